"""Read a stored episode back step by step: the screen, the turns, and the memory folder as it was.

The folder at any step is rebuilt from the episode's seed files plus every recorded operation's
content after it, so replays work on any episode the CLI or the TUI recorded. Per-file timelines
(bisect by operation id) make a jump to any step cost the same as the next step, which keeps
scrubbing through thousands of steps fast.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

from sqlite_utils.db import NotFoundError

from automem.errors import AutomemError
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

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ReplayCall:
        """The call from its ``llm_calls`` row: each field is the column of the same name."""
        values = {f.name: row[f.name] for f in fields(cls)}
        return cls(**values | {"valid": bool(row["valid"])})


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


@dataclass(frozen=True)
class MemorySizes:
    """Characters of each memory file after every step of an episode (0 while a file does not exist)."""

    episode_id: int
    steps: list[int]
    files: dict[str, list[int]]

    def as_dict(self) -> dict[str, Any]:
        return {"episode_id": self.episode_id, "steps": self.steps, "files": self.files}

    def changes(self) -> list[tuple[int, list[int]]]:
        """(step, sizes in ``files`` order) of the first step and each step where a size changed:
        the table form, which stays short on a long episode."""
        paths = list(self.files)
        out: list[tuple[int, list[int]]] = []
        last: list[int] | None = None
        for i, step in enumerate(self.steps):
            sizes = [self.files[p][i] for p in paths]
            if sizes != last:
                out.append((step, sizes))
                last = sizes
        return out


class ReplayError(AutomemError):
    """The episode does not exist or holds no steps."""


class EpisodeReplay:
    def __init__(self, store: Store, episode_id: int) -> None:
        self.store = store
        try:
            self.episode: dict[str, Any] = store.episode(episode_id)
        except NotFoundError:
            raise ReplayError(f"no episode {episode_id} in {store.path}") from None
        self.episode_id = episode_id
        self._steps = store.steps(episode_id)
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
            total += row["reward"]
            self._total_reward.append(total)

    def __len__(self) -> int:
        return len(self._steps)

    # -- loading --------------------------------------------------------------------------
    def _load_ops(self) -> None:
        last_by_step: dict[int, int] = {}
        for row in self.store.memory_ops_of(self.episode_id):
            op = ReplayOp(row["id"], row["phase"], row["turn"], row["source"], row["verb"], row["path"],
                          json.loads(row["args"] or "{}"), bool(row["ok"]), row["message"], row["diff"] or "",
                          row["llm_call_id"])  # fmt: skip
            self._ops.setdefault(row["step"], []).append(op)
            last_by_step[row["step"]] = op.id
            if not op.is_write:
                continue
            after = row["after_id"]
            if op.verb == "rename":
                # content moved from path to new_path: the old path is gone
                self._change(op.path, op.id, None)
                self._change(op.args.get("new_path", ""), op.id, after)
            else:
                self._change(op.path, op.id, after)  # None after a delete
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
        return self.store.texts_by_id([text_id]).get(text_id, "")

    def _find_achievement_steps(self) -> list[int]:
        out, seen = [], 0
        for index, row in enumerate(self._steps):
            count = len(json.loads(row["achievements"] or "[]"))
            if count > seen:
                out.append(index)
            seen = count
        return out

    # -- what a step shows ------------------------------------------------------------------
    def step(self, index: int) -> ReplayStep:
        if not 0 <= index < len(self._steps):
            raise ReplayError(f"step {index} is outside 0..{len(self._steps) - 1}")
        row = self._steps[index]
        now = json.loads(row["achievements"] or "[]")
        before = set(json.loads(self._steps[index - 1]["achievements"] or "[]")) if index else set()
        return ReplayStep(
            index=row["step"],
            observation=row["observation"],
            helper_notes=row["helper_notes"] or "",
            frame=Frame.from_dict(json.loads(row["frame"])),
            action=row["action"],
            action_source=row["action_source"],
            reward=row["reward"],
            done=bool(row["done"]),
            progression=row["progression"],
            achievements=now,
            unlocked=[a for a in now if a not in before],
            invalid_outputs=row["invalid_outputs"],
            input_tokens=row["input_tokens"],
            cached_tokens=row["cached_tokens"],
            output_tokens=row["output_tokens"],
            model_s=row["model_s"],
            calls=self.calls(index),
            ops=list(self._ops.get(index, [])),
        )

    def calls(self, index: int) -> list[ReplayCall]:
        return [ReplayCall.from_row(row) for row in self.store.calls_of_step(self.episode_id, index)]

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

    def memory_sizes(self) -> MemorySizes:
        """Every memory file's size in characters after each step, from the same timelines
        :meth:`memory` reads (the texts' lengths only, not the texts)."""
        text_ids = {t for _, contents in self._timeline.values() for t in contents if t is not None}
        lengths = self.store.text_lengths(text_ids)
        paths = sorted(p for p in set(self._seed) | set(self._timeline) if p)
        files: dict[str, list[int]] = {}
        for path in paths:
            ids, contents = self._timeline.get(path, ([], []))
            seed = len(self._seed[path]) if path in self._seed else 0
            sizes = []
            for limit in self._last_op_of_step:
                at = bisect.bisect_right(ids, limit) - 1
                text_id = contents[at] if at >= 0 else None
                sizes.append(seed if at < 0 else (lengths.get(text_id, 0) if text_id is not None else 0))
            files[path] = sizes
        return MemorySizes(self.episode_id, [row["step"] for row in self._steps], files)

    def total_reward(self, index: int) -> float:
        """Reward summed over steps 0..index."""
        return self._total_reward[index] if self._total_reward else 0.0

    def prompt(self, call_id: int) -> list[dict[str, str]]:
        return self.store.call_prompt(call_id)

    # -- cheap per-step facts (no model calls loaded): what a lockstep comparison scans --------
    def action(self, index: int) -> str:
        return str(self._steps[index]["action"])

    def writes(self, index: int) -> list[ReplayOp]:
        """Step ``index``'s memory operations that changed a file."""
        return [op for op in self._ops.get(index, []) if op.is_write]

    def standing(self, index: int) -> tuple[float, int]:
        """(progression, achievements unlocked) after step ``index``."""
        row = self._steps[index]
        return float(row["progression"]), len(json.loads(row["achievements"] or "[]"))

    def write_steps_until(self, index: int) -> int:
        """How many of steps 0..index wrote memory."""
        return bisect.bisect_right(self._writes, index)

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
    return store.recent_episodes(limit)
