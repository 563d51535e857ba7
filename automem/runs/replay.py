"""Read a stored episode back step by step: the screen, the turns, and the memory folder as it was.

The folder at any step is rebuilt from the episode's seed files plus every recorded operation's
content after it, so replays work on any episode the CLI or the TUI recorded. Per-file timelines
(bisect by operation id) make a jump to any step cost the same as the next step, which keeps
scrubbing through thousands of steps fast.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlite_utils.db import NotFoundError

from automem.games.base import Frame
from automem.memory.ops import READ_VERBS
from automem.store.db import Store

_READS = frozenset(v.value for v in READ_VERBS)


@dataclass
class ReplayCall:
    id: int
    phase: str
    turn: int
    engine: str
    response: str
    parsed: str
    valid: bool
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    latency_s: float


@dataclass
class ReplayOp:
    id: int
    phase: str
    turn: int
    source: str
    verb: str
    path: str
    args: dict[str, Any]
    ok: bool
    message: str
    diff: str
    call_id: int | None

    @property
    def is_write(self) -> bool:
        return self.ok and self.verb not in _READS


@dataclass
class ReplayStep:
    index: int
    observation: str
    helper_notes: str
    frame: Frame
    action: str
    action_source: str
    reward: float
    done: bool
    progression: float
    achievements: list[str]
    unlocked: list[str]
    invalid_outputs: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    model_s: float
    calls: list[ReplayCall] = field(default_factory=list)
    ops: list[ReplayOp] = field(default_factory=list)


class ReplayError(Exception):
    """The episode does not exist or holds no steps."""


class EpisodeReplay:
    def __init__(self, store: Store, episode_id: int) -> None:
        self.store = store
        try:
            self.episode: dict[str, Any] = store.episode(episode_id)
        except NotFoundError:
            raise ReplayError(f"no episode {episode_id} in {store.path}") from None
        self.episode_id = episode_id
        self._steps = store.db.execute(
            "SELECT step, observation, helper_notes, frame, action, action_source, reward, done, progression, "
            "achievements, invalid_outputs, input_tokens, cached_tokens, output_tokens, model_s "
            "FROM steps WHERE episode_id = ? ORDER BY step",
            [episode_id],
        ).fetchall()
        self._ops: dict[int, list[ReplayOp]] = {}
        # path -> ([op id, ...], [text id or None, ...]): the file's content after each change
        self._timeline: dict[str, tuple[list[int], list[str | None]]] = {}
        self._last_op_of_step: list[int] = []
        self._seed: dict[str, str] = json.loads(self.episode.get("memory_seed") or "{}")
        self._load_ops()
        self._writes = sorted({s for s, ops in self._ops.items() if any(o.is_write for o in ops)})
        self._achievement_steps = self._find_achievement_steps()
        self._text = lru_cache(maxsize=4096)(self._load_text)
        total, self._total_reward = 0.0, []
        for row in self._steps:
            total += row[6]
            self._total_reward.append(total)

    def __len__(self) -> int:
        return len(self._steps)

    # -- loading --------------------------------------------------------------------------
    def _load_ops(self) -> None:
        rows = self.store.db.execute(
            "SELECT id, step, phase, turn, source, verb, path, args, ok, message, diff, llm_call_id, "
            "before_id, after_id FROM memory_ops WHERE episode_id = ? ORDER BY id",
            [self.episode_id],
        ).fetchall()
        last_by_step: dict[int, int] = {}
        for op_id, step, phase, turn, source, verb, path, args, ok, message, diff, call_id, _before, after in rows:
            op = ReplayOp(op_id, phase, turn, source, verb, path, json.loads(args or "{}"), bool(ok), message,
                          diff or "", call_id)  # fmt: skip
            self._ops.setdefault(step, []).append(op)
            last_by_step[step] = op_id
            if not op.is_write:
                continue
            if verb == "rename":
                # content moved from path to new_path: the old path is gone
                self._change(path, op_id, None)
                self._change(op.args.get("new_path", ""), op_id, after)
            else:
                self._change(path, op_id, after)  # None after a delete
        # the last operation id at or before each step, for timeline lookups
        running = 0
        for index in range(len(self._steps)):
            running = max(running, last_by_step.get(index, 0))
            self._last_op_of_step.append(running)

    def _change(self, path: str, op_id: int, text_id: str | None) -> None:
        ids, contents = self._timeline.setdefault(path, ([], []))
        ids.append(op_id)
        contents.append(text_id)

    def _load_text(self, text_id: str) -> str:
        row = self.store.db.execute("SELECT text FROM texts WHERE id = ?", [text_id]).fetchone()
        return row[0] if row else ""

    def _find_achievement_steps(self) -> list[int]:
        out, seen = [], 0
        for index, row in enumerate(self._steps):
            count = len(json.loads(row[9] or "[]"))
            if count > seen:
                out.append(index)
            seen = count
        return out

    # -- what a step shows ------------------------------------------------------------------
    def step(self, index: int) -> ReplayStep:
        if not 0 <= index < len(self._steps):
            raise ReplayError(f"step {index} is outside 0..{len(self._steps) - 1}")
        (step, observation, notes, frame, action, source, reward, done, progression, achievements, invalid,
         input_tokens, cached_tokens, output_tokens, model_s) = self._steps[index]  # fmt: skip
        now = json.loads(achievements or "[]")
        before = set(json.loads(self._steps[index - 1][9] or "[]")) if index else set()
        return ReplayStep(
            index=step,
            observation=observation,
            helper_notes=notes or "",
            frame=Frame.from_dict(json.loads(frame)),
            action=action,
            action_source=source,
            reward=reward,
            done=bool(done),
            progression=progression,
            achievements=now,
            unlocked=[a for a in now if a not in before],
            invalid_outputs=invalid,
            input_tokens=input_tokens,
            cached_tokens=cached_tokens,
            output_tokens=output_tokens,
            model_s=model_s,
            calls=self.calls(index),
            ops=list(self._ops.get(index, [])),
        )

    def calls(self, index: int) -> list[ReplayCall]:
        rows = self.store.db.execute(
            "SELECT id, phase, turn, engine, response, parsed, valid, input_tokens, cached_tokens, output_tokens, "
            "latency_s FROM llm_calls WHERE episode_id = ? AND step = ? ORDER BY id",
            [self.episode_id, index],
        ).fetchall()
        return [ReplayCall(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), *r[7:]) for r in rows]

    def memory(self, index: int) -> dict[str, str]:
        """The memory folder after step ``index``'s operations (index -1: the seed files): path -> content."""
        if index < 0:
            return dict(sorted(self._seed.items()))
        limit = self._last_op_of_step[index] if self._last_op_of_step else 0
        files = dict(self._seed)
        for path, (ids, contents) in self._timeline.items():
            at = bisect.bisect_right(ids, limit) - 1
            if at < 0:
                continue  # not changed yet: the seed (if any) holds
            text_id = contents[at]
            if text_id is None:
                files.pop(path, None)
            else:
                files[path] = self._text(text_id)
        return dict(sorted(files.items()))

    def total_reward(self, index: int) -> float:
        """Reward summed over steps 0..index."""
        return self._total_reward[index] if self._total_reward else 0.0

    def prompt(self, call_id: int) -> list[dict[str, str]]:
        return self.store.call_prompt(call_id)

    # -- navigation -----------------------------------------------------------------------
    def next_write(self, index: int) -> int | None:
        """The next step after ``index`` with a memory write."""
        at = bisect.bisect_right(self._writes, index)
        return self._writes[at] if at < len(self._writes) else None

    def previous_write(self, index: int) -> int | None:
        at = bisect.bisect_left(self._writes, index) - 1
        return self._writes[at] if at >= 0 else None

    def next_achievement(self, index: int) -> int | None:
        """The next step after ``index`` that unlocked an achievement."""
        at = bisect.bisect_right(self._achievement_steps, index)
        return self._achievement_steps[at] if at < len(self._achievement_steps) else None


def list_episodes(store: Store, limit: int = 500) -> list[dict[str, Any]]:
    """Stored episodes, newest first, with what the replay table shows."""
    rows = store.db.execute(
        "SELECT e.id, r.name, e.game, e.task, s.name, e.structure_id, e.engine, e.model, e.seed, e.steps, "
        "e.progression, e.status, e.started_at FROM episodes e JOIN runs r ON r.id = e.run_id "
        "LEFT JOIN structures s ON s.id = e.structure_id ORDER BY e.id DESC LIMIT ?",
        [limit],
    ).fetchall()
    keys = ("id", "run", "game", "task", "structure", "structure_id", "engine", "model", "seed", "steps",
            "progression", "status", "started_at")  # fmt: skip
    return [dict(zip(keys, r, strict=True)) for r in rows]
