"""Per-episode figures, the events worth a window, and the digest of a run.

An episode's numbers come from its step and operation rows (readers); its windows are chosen
from events (the end, invalid outputs, refused operations, long streaks without reward,
achievements, the biggest progression rises), merged where they overlap and taken failures and
best moments in turn so the critic sees both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from automem.optimize.digest.files import FileStatsBuilder, file_stats
from automem.optimize.digest.model import Digest, DigestError, EpisodeDigest, Window
from automem.optimize.digest.readers import (
    Op,
    Step,
    StructureInfo,
    load_ops,
    load_steps,
    log_budget_exhausted,
    structure_info,
)
from automem.optimize.digest.render import first_line, plural, step_line, turn_lines
from automem.runs.memory_metrics import run_metrics
from automem.runs.metrics import mean_se
from automem.store.db import Store

# ends that are the harness's cap or a person stopping the run, not something the agent did
_CAP_ENDS = frozenset({"max steps", "max steps of the env", "interrupted"})
_DEATH_WORDS = ("death", "died", "dead", "killed")
_VITALS = re.compile(r"HP:\d+\(\d+\)|\b(?:health|food|drink|energy): \d+/\d+|\b(?:Hungry|Weak|Fainting)\b")


# -- one episode ----------------------------------------------------------------------------------
@dataclass
class _Event:
    kind: str
    priority: int
    start: int
    end: int
    reasons: list[str]
    focus: int
    weight: float = 0.0  # among equal priorities, the bigger moment first


def _end_kind(episode: dict[str, Any]) -> str | None:
    """'death', 'failed' or 'early' when the episode's end is worth a window; 'success'; or None."""
    reason, error = episode.get("ended_reason") or "", episode.get("error") or ""
    text = f"{reason} {error}".lower()
    if any(word in text for word in _DEATH_WORDS):
        return "death"
    if episode.get("status") == "failed":
        return "failed"
    if reason == "success":
        return "success"
    if episode.get("status") == "finished" and reason and reason not in _CAP_ENDS:
        return "early"  # the game said done before the step cap: look at how it got there
    return None


def _death_cause(store: Store, episode: dict[str, Any]) -> str:
    """The end reason plus what the agent last saw: NetHack's message line and the vitals."""
    parts = [episode.get("ended_reason") or episode.get("error") or "ended"]
    row = store.last_observation(episode["id"])
    if row and row[1]:
        lines = row[1].split("\n")
        if lines[0].strip() == "Message:" and len(lines) > 1 and lines[1].strip() not in ("", "(none)"):
            parts.append(f"last message {lines[1].strip()!r}")
        vitals = _VITALS.findall(row[1])
        if vitals:
            parts.append(f"last seen at step {row[0]}: {', '.join(dict.fromkeys(vitals))}")
    return "; ".join(parts)


def _longest_streak(steps: list[Step]) -> tuple[int, int]:
    """(length, start) of the longest run of steps without positive reward (NetHack's per-step
    penalties are negative, so 'zero' means nothing gained)."""
    best, best_start, run, start = 0, 0, 0, 0
    for s in steps:
        if s.reward > 0:
            run = 0
            continue
        if run == 0:
            start = s.step
        run += 1
        if run > best:
            best, best_start = run, start
    return best, best_start


def _events(
    episode: dict[str, Any], steps: list[Step], ops: list[Op], digest: EpisodeDigest, window: int
) -> list[_Event]:
    last = steps[-1].step
    events: list[_Event] = []

    def around(kind: str, priority: int, step: int, reason: str, weight: float = 0.0) -> None:
        start, end = max(0, step - window), min(last, step + window)
        events.append(_Event(kind, priority, start, end, [reason], step, weight))

    end = _end_kind(episode)
    if end is not None:
        kind = "best" if end == "success" else "failure"
        what = digest.death_cause if end == "death" else (episode.get("error") or episode.get("ended_reason"))
        events.append(_Event(kind, 0, max(0, last - 2 * window), last, [f"episode ended ({end}): {what}"], last))
    invalid = [s for s in steps if s.invalid]
    if invalid:
        worst = max(invalid, key=lambda s: (s.invalid, -s.step))
        around("failure", 1, worst.step, f"{plural(worst.invalid, 'invalid output')} at step {worst.step} "
               f"({len(invalid)} steps had some)")  # fmt: skip
        if invalid[0].step < worst.step - 2 * window:
            around("failure", 3, invalid[0].step, f"first invalid output at step {invalid[0].step}")
    refused = [o for o in ops if not o.ok]
    for rank, op in enumerate(dict.fromkeys([refused[0], refused[-1]]) if refused else []):
        note = f"refused {op.verb or 'operation'} {op.path} at step {op.step}: {first_line(op.message)}"
        if rank == 0:
            note += f" ({len(refused)} refused in the episode)"
        around("failure", 2 + 2 * rank, op.step, note)
    length, start = digest.longest_zero_reward_streak, digest.zero_reward_streak_start
    if length > 2 * window:
        around("failure", 3, start, f"start of the longest streak without reward: {length} steps from step {start}")
    for step, name in digest.achievements:
        around("best", 1, step, f"unlocked {name} at step {step}", weight=step)
    rises = [(s.progression - (steps[i - 1].progression if i else 0.0), s.step) for i, s in enumerate(steps)]
    for delta, step in sorted((r for r in rises if r[0] > 0), reverse=True)[:2]:
        around("best", 1, step, f"progression +{delta:.2f} at step {step}", weight=delta * 1000 + step)
    return events


def _merge(events: list[_Event]) -> list[_Event]:
    """Overlapping windows of one kind become one, so no step is shown twice for the same reason;
    the merged window keeps the focus of its most important event."""
    out: list[_Event] = []
    for kind in ("failure", "best"):
        merged: list[_Event] = []
        for e in sorted((e for e in events if e.kind == kind), key=lambda e: e.start):
            if merged and e.start <= merged[-1].end:
                m = merged[-1]
                if (e.priority, -e.weight) < (m.priority, -m.weight):
                    m.focus = e.focus
                m.end = max(m.end, e.end)
                m.priority, m.weight = min(m.priority, e.priority), max(m.weight, e.weight)
                m.reasons += [r for r in e.reasons if r not in m.reasons]
            else:
                merged.append(_Event(e.kind, e.priority, e.start, e.end, list(e.reasons), e.focus, e.weight))
        out += merged
    return out


def _select(events: list[_Event], limit: int) -> list[_Event]:
    """The most important windows, taking failures and best moments in turn so both are seen."""
    queues = {
        kind: sorted((e for e in events if e.kind == kind), key=lambda e: (e.priority, -e.weight, e.start))
        for kind in ("failure", "best")
    }
    chosen: list[_Event] = []
    while len(chosen) < limit and (queues["failure"] or queues["best"]):
        heads = [q[0] for q in queues.values() if q]
        pick = min(heads, key=lambda e: (e.priority, e.kind != "failure"))
        queues[pick.kind].pop(0)
        chosen.append(pick)
        other = "best" if pick.kind == "failure" else "failure"
        if queues[other] and len(chosen) < limit:
            chosen.append(queues[other].pop(0))
    return chosen


def _episode_digest(
    store: Store, episode: dict[str, Any], info: StructureInfo, window: int, max_windows: int
) -> tuple[EpisodeDigest, dict[str, FileStatsBuilder]]:
    eid = int(episode["id"])
    steps = load_steps(store, eid)
    ops = load_ops(store, eid)
    seed = json.loads(episode.get("memory_seed") or "{}")
    prompt_chars = store.prompt_chars(eid)
    accs = file_stats(store, steps, ops, seed, info, prompt_chars)
    helper_ops = sum(o.source == "helper" for o in ops)
    ops = [o for o in ops if o.source != "helper"]  # the rest of the digest judges the agent's own
    streak, streak_start = _longest_streak(steps)
    tokens = sum(s.tokens for s in steps)
    timeline, best = [], 0.0
    for s in steps:
        if s.progression > best:
            best = s.progression
            timeline.append((s.step, s.progression))
    digest = EpisodeDigest(
        episode_id=eid,
        task=episode.get("task") or "",
        seed=int(episode.get("seed") or 0),
        status=episode.get("status") or "",
        steps=len(steps),
        progression=float(episode.get("progression") or 0.0),
        ended_reason=episode.get("ended_reason"),
        error=episode.get("error"),
        achievements=[(s.step, name) for s in steps for name in s.unlocked],
        invalid_outputs=sum(s.invalid for s in steps),
        unchanged_observations=sum(s.unchanged for s in steps),
        longest_zero_reward_streak=streak,
        fallback_actions=sum(s.source == "fallback" for s in steps),
        tokens_per_step=round(tokens / len(steps), 1) if steps else 0.0,
        memory_ops=len(ops),
        helper_ops=helper_ops,
        zero_reward_streak_start=streak_start,
        refused_ops=sum(not o.ok for o in ops),
        progression_timeline=timeline,
        log_budget_exhausted=log_budget_exhausted(store, eid, info.log_budget),
        files={p: a.build() for p, a in accs.items()},
    )
    if _end_kind(episode) == "death":
        digest.died, digest.death_cause = True, _death_cause(store, episode)
    if steps:
        chosen = _select(_merge(_events(episode, steps, ops, digest, window)), max_windows)
        digest.windows = _windows(store, eid, steps, chosen)
    return digest, accs


# -- windows as lines ----------------------------------------------------------------------------
def _windows(store: Store, episode_id: int, steps: list[Step], chosen: list[_Event]) -> list[Window]:
    out = []
    by_step = {s.step: i for i, s in enumerate(steps)}
    for e in chosen:
        turns = turn_lines(store, episode_id, e.start, e.end)
        lines = []
        for s in steps[by_step.get(e.start, 0) : by_step.get(e.end, len(steps) - 1) + 1]:
            previous = steps[by_step[s.step] - 1].progression if by_step[s.step] else 0.0
            lines.append(step_line(s, previous))
            lines += turns.get(s.step, [])
        out.append(Window(episode_id, e.kind, "; ".join(e.reasons), e.start, e.end, lines, e.priority, e.focus))
    return out


# -- the run --------------------------------------------------------------------------------------
def build_digest(
    store: Store,
    run_id: int,
    *,
    window: int = 3,
    max_windows_per_episode: int = 4,
    episode_ids: Collection[int] | None = None,
) -> Digest:
    """The digest of every episode of ``run_id`` (any status; unfinished ones are marked), or of
    those in ``episode_ids``."""
    run = store.run_by_id(run_id)
    if run is None:
        raise DigestError(f"no run {run_id} in {store.path}")
    cache: dict[str | None, StructureInfo] = {}
    episodes: list[EpisodeDigest] = []
    files: dict[str, FileStatsBuilder] = {}
    for episode in store.episodes(run_id):
        if episode_ids is not None and episode["id"] not in episode_ids:
            continue
        info = structure_info(store, episode.get("structure_id") or run["structure_id"], cache)
        digest, accs = _episode_digest(store, episode, info, window, max_windows_per_episode)
        episodes.append(digest)
        for path, acc in accs.items():
            files.setdefault(path, FileStatsBuilder(path)).add(acc)
    finished = [e.progression for e in episodes if e.status == "finished"]
    mean, se = mean_se(finished or [e.progression for e in episodes])
    steps = sum(e.steps for e in episodes)
    tokens = sum(e.tokens_per_step * e.steps for e in episodes)
    return Digest(
        run_id=run_id,
        structure_id=run["structure_id"],
        game=run["game"] or "",
        episodes=episodes,
        files={p: a.build() for p, a in files.items()},
        mean_progression=round(mean, 4),
        stderr=round(se, 4),
        tokens_per_step=round(tokens / steps, 1) if steps else 0.0,
        memory=run_metrics(store, [e.episode_id for e in episodes]),
    )
