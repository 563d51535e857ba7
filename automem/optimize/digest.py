"""The trajectory digest loop 1's critic reads: a run's episodes condensed to what fits its context.

Whole trajectories are thousands of steps, so the critic gets numbers and a few windows instead:
per episode the outcome, progression and achievement timeline, failure counts (invalid outputs,
unchanged observations, streaks without reward, deaths and their cause); per memory file how it
was written, read and how much of the prompt it took; and the steps around the failures and the
best moments with their LOG and PLAN turns. A critic engine with tool calls can ask for more:
:func:`step_range` and :func:`memory_file_at`, described for it in :data:`TOOLS` and dispatched by
:func:`call_tool`.

Everything is read through the store's trajectory readers (automem.store.trajectories). Whole
texts (prompts, file contents) are never loaded per call: sizes come from ``length()`` inside
SQLite, and only the contents needed to judge a write redundant or a file's final line count are
fetched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import yaml

from automem.errors import AutomemError
from automem.memory.ops import ADDING_VERBS, READ_VERBS, added_lines_present, split_lines
from automem.runs.memory_metrics import MemoryMetrics, run_metrics
from automem.runs.metrics import mean_se
from automem.store.db import Store

_READS = frozenset(v.value for v in READ_VERBS)
# ends that are the harness's cap or a person stopping the run, not something the agent did
_CAP_ENDS = frozenset({"max steps", "max steps of the env", "interrupted"})
_DEATH_WORDS = ("death", "died", "dead", "killed")
# a search/count over '*' lists "path:3: text" or "path: 3 lines, ..." per file
_STAR_LINE = re.compile(r"^([^\s:]+):(?:\d+:)?\s")
_VITALS = re.compile(r"HP:\d+\(\d+\)|\b(?:health|food|drink|energy): \d+/\d+|\b(?:Hungry|Weak|Fainting)\b")
_LINE_WIDTH = 160  # a digest line longer than this is cut: one step's turn must not eat the budget


class DigestError(AutomemError, ValueError):
    """The run does not exist."""


# -- the digest as data ---------------------------------------------------------------------------
@dataclass
class FileStats:
    """One memory file over a run's episodes (or one episode's).

    ``context_share`` approximates the share of prompt characters the file took: while pinned, its
    size at the start of each step counted once per model call of that step, plus the characters
    its successful reads returned (counted once, though a read stays in the step's later turns),
    over the characters of every model call's prompt. Episodes without model calls add nothing.
    ``final_lines``/``final_chars`` are the mean over episodes of the size at the episode's end;
    ``growth_chars_per_step`` is (end size - seed size) summed over episodes / their steps.
    """

    path: str
    writes: int = 0  # successful write verbs (append, write, upsert, ...), appends included
    failed_writes: int = 0  # write verbs the folder refused (caps, read-only, bad line, ...)
    reads: int = 0  # successful view/tail/search/count; a search or count over '*' counts for each file it listed
    redundant_writes: int = 0  # the content did not change, or the added lines were already there
    final_lines: int = 0
    final_chars: int = 0
    growth_chars_per_step: float = 0.0
    context_share: float = 0.0
    never_read: bool = True  # never read by a read verb and not pinned (so the agent never saw it)
    pinned: bool = False
    appends: int = 0  # successful writes that were appends
    helper_writes: int = 0  # successful writes by the structure's helpers (not in ``writes``)


@dataclass
class Window:
    """Consecutive steps around a failure or a best moment, as digest lines."""

    episode_id: int
    kind: str  # failure | best
    reason: str
    start: int
    end: int
    lines: list[str] = field(default_factory=list)
    priority: int = 0  # lower is more important (a death before a refused operation)
    focus: int = 0  # the step the reason is about: a window cut to fit keeps the steps nearest it


@dataclass
class EpisodeDigest:
    episode_id: int
    task: str
    seed: int
    status: str  # finished | failed | interrupted | running (the last three are unfinished)
    steps: int
    progression: float
    ended_reason: str | None
    error: str | None
    achievements: list[tuple[int, str]] = field(default_factory=list)  # (step that unlocked it, name)
    invalid_outputs: int = 0
    unchanged_observations: int = 0  # steps whose observation equals the previous step's
    longest_zero_reward_streak: int = 0  # longest run of steps without positive reward
    fallback_actions: int = 0
    tokens_per_step: float = 0.0
    memory_ops: int = 0  # the model's and a person's (helpers' are in helper_ops)
    helper_ops: int = 0
    windows: list[Window] = field(default_factory=list)
    zero_reward_streak_start: int = 0
    refused_ops: int = 0
    died: bool = False
    death_cause: str | None = None  # the end reason and the vitals and message last seen before it
    progression_timeline: list[tuple[int, float]] = field(default_factory=list)  # (step, value) on each rise
    log_budget_exhausted: int = 0  # steps whose LOG phase used every turn without DONE
    files: dict[str, FileStats] = field(default_factory=dict)

    @property
    def unfinished(self) -> bool:
        return self.status != "finished"


@dataclass
class Digest:
    run_id: int
    structure_id: str | None
    game: str
    episodes: list[EpisodeDigest]
    files: dict[str, FileStats]  # over the run's episodes
    mean_progression: float  # over finished episodes (all episodes when none finished)
    stderr: float
    tokens_per_step: float
    #: the paper's memory metrics over these episodes (automem.runs.memory_metrics)
    memory: MemoryMetrics = field(default_factory=MemoryMetrics)

    def to_text(self, budget_chars: int = 12000) -> str:
        """A plain-text report that always fits ``budget_chars``: headline numbers, the file
        table, one entry per episode, then windows, most important first, while room is left."""
        return _render(self, budget_chars)


# -- reading the store ----------------------------------------------------------------------------
class _Step(NamedTuple):
    step: int
    action: str
    source: str
    reward: float
    progression: float
    unlocked: tuple[str, ...]
    invalid: int
    tokens: int
    calls: int
    unchanged: bool


class _Op(NamedTuple):
    id: int
    step: int
    verb: str
    path: str
    args: str
    ok: bool
    message_chars: int
    message: str | None  # only for refused ops and '*' reads: the rest never need it
    before_id: str | None
    after_id: str | None
    after_chars: int | None
    source: str  # model | human | helper


@dataclass
class StructureInfo:
    files: list[str]
    pinned: frozenset[str]
    log_budget: int | None


@dataclass
class _FileAcc:
    """Raw sums for one file, so episodes add up before shares and means are taken."""

    path: str
    pinned: bool = False
    writes: int = 0
    failed_writes: int = 0
    reads: int = 0
    redundant: int = 0
    helper_writes: int = 0
    appends: int = 0
    final_lines: int = 0
    final_chars: int = 0
    episodes: int = 0
    growth: int = 0
    steps: int = 0
    context_chars: int = 0
    prompt_chars: int = 0

    def add(self, other: _FileAcc) -> None:
        self.pinned = self.pinned or other.pinned
        for name in ("writes", "failed_writes", "reads", "redundant", "helper_writes", "appends", "final_lines",
                     "final_chars", "episodes", "growth", "steps", "context_chars", "prompt_chars"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def stats(self) -> FileStats:
        episodes = max(self.episodes, 1)
        return FileStats(
            path=self.path,
            writes=self.writes,
            failed_writes=self.failed_writes,
            reads=self.reads,
            redundant_writes=self.redundant,
            final_lines=round(self.final_lines / episodes),
            final_chars=round(self.final_chars / episodes),
            growth_chars_per_step=round(self.growth / self.steps, 3) if self.steps else 0.0,
            context_share=round(self.context_chars / self.prompt_chars, 4) if self.prompt_chars else 0.0,
            never_read=self.reads == 0 and not self.pinned,
            pinned=self.pinned,
            appends=self.appends,
            helper_writes=self.helper_writes,
        )


def structure_info(
    store: Store, structure_id: str | None, cache: dict[str | None, StructureInfo] | None = None
) -> StructureInfo:
    """The files, pinned files and LOG budget of a stored structure.

    The stored YAML is read as plain data: a digest of an old run must not fail on a schema change."""
    cache = {} if cache is None else cache
    if structure_id in cache:
        return cache[structure_id]
    text = store.structure_yaml(structure_id)
    data: Any = {}
    if text:
        try:
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError:
            data = {}
    data = data if isinstance(data, dict) else {}
    files = [f for f in data.get("files") or [] if isinstance(f, dict) and f.get("path")]
    log = next((p for p in data.get("phases") or [] if isinstance(p, dict) and p.get("kind") == "LOG"), None)
    info = StructureInfo(
        files=[str(f["path"]) for f in files],
        pinned=frozenset(str(f["path"]) for f in files if f.get("pinned")),
        log_budget=int(log.get("budget", 2)) if log else None,
    )
    cache[structure_id] = info
    return info


def _load_steps(store: Store, episode_id: int) -> list[_Step]:
    rows = store.step_rows_for_digest(episode_id)
    out: list[_Step] = []
    last_json, seen = "[]", set()
    for step, action, source, reward, progression, achievements, invalid, tokens, calls, same in rows:
        unlocked: tuple[str, ...] = ()
        if (achievements or "[]") != last_json:  # parse only when the list changed
            last_json = achievements or "[]"
            names = json.loads(last_json)
            unlocked = tuple(a for a in names if a not in seen)
            seen.update(names)
        out.append(_Step(step, action or "", source or "", float(reward or 0.0), float(progression or 0.0),
                         unlocked, int(invalid or 0), int(tokens), int(calls), bool(same)))  # fmt: skip
    return out


def _load_ops(store: Store, episode_id: int) -> list[_Op]:
    rows = store.memory_op_rows_for_digest(episode_id)
    return [_Op(r[0], r[1], r[2] or "", r[3] or "", r[4] or "{}", bool(r[5]), int(r[6] or 0), r[7], r[8], r[9], r[10],
                r[11] or "model") for r in rows]  # fmt: skip


def _log_budget_exhausted(store: Store, episode_id: int, budget: int | None) -> int:
    if not budget:
        return 0
    turns: dict[int, list[str]] = {}
    for call in store.calls_of(episode_id, phase="LOG"):
        turns.setdefault(call["step"], []).append(call["parsed"] or "")
    return sum(1 for parsed in turns.values() if len(parsed) >= budget and parsed[-1].strip() != "DONE")


# -- memory statistics ----------------------------------------------------------------------------
def _read_targets(op: _Op) -> list[tuple[str, int]]:
    """(file, characters returned) for one successful read; '*' reads are split by the files listed."""
    if op.path != "*":
        return [(op.path, op.message_chars)]
    out: dict[str, int] = {}
    for line in (op.message or "").split("\n"):
        m = _STAR_LINE.match(line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0) + len(line) + 1
    return list(out.items())


def _file_stats(
    store: Store, steps: list[_Step], ops: list[_Op], seed: dict[str, str], info: StructureInfo, prompt_chars: int
) -> dict[str, _FileAcc]:
    ok_paths = {o.path for o in ops if o.ok and o.path and o.path != "*" and o.verb not in _READS}
    ok_paths |= {json.loads(o.args).get("new_path", "") for o in ops if o.ok and o.verb == "rename"}
    order = [*info.files, *seed, *sorted(ok_paths)]
    accs = {p: _FileAcc(p, pinned=p in info.pinned) for p in dict.fromkeys(order) if p}
    # path -> [(step, size after)] for writes; None once deleted or renamed away
    sizes: dict[str, list[tuple[int, int | None]]] = {}
    last_text: dict[str, str | None] = {}
    to_check: list[_Op] = []
    for op in ops:
        if op.verb in _READS:
            if op.ok:
                for path, chars in _read_targets(op):
                    if path in accs:
                        accs[path].reads += 1
                        accs[path].context_chars += chars
            continue
        acc = accs.get(op.path)
        if acc is None:
            continue  # a refused write to a path that never existed: counted in the episode's refused ops
        if op.source == "helper":
            # a helper's write changes the file (its size, growth, what is pinned) but is counted
            # apart, so the model's write and redundant-write figures stay the model's
            acc.helper_writes += op.ok
            if op.ok:
                sizes.setdefault(op.path, []).append((op.step, op.after_chars))
                last_text[op.path] = op.after_id
            continue
        if not op.ok:
            acc.failed_writes += 1
            continue
        acc.writes += 1
        acc.appends += op.verb == "append"
        if op.verb == "rename":
            new_path = json.loads(op.args).get("new_path", "")
            sizes.setdefault(op.path, []).append((op.step, None))
            last_text[op.path] = None
            sizes.setdefault(new_path, []).append((op.step, op.after_chars))
            last_text[new_path] = op.after_id
            continue
        sizes.setdefault(op.path, []).append((op.step, op.after_chars))
        last_text[op.path] = op.after_id
        if op.verb != "delete" and op.before_id == op.after_id:
            acc.redundant += 1  # texts are content-addressed: equal ids, equal content
        elif op.verb in ADDING_VERBS and op.before_id is not None:
            to_check.append(op)
    befores = store.texts_by_id(o.before_id for o in to_check if o.before_id)
    for op in to_check:
        if added_lines_present(op.verb, json.loads(op.args or "{}"), befores.get(op.before_id or "", "")):
            accs[op.path].redundant += 1
    finals = store.texts_by_id(t for t in last_text.values() if t)
    for path, acc in accs.items():
        final = finals.get(last_text[path] or "", "") if path in last_text else seed.get(path, "")
        acc.final_lines, acc.final_chars = len(split_lines(final)), len(final)
        acc.growth = len(final) - len(seed.get(path, ""))
        acc.episodes, acc.steps, acc.prompt_chars = 1, len(steps), prompt_chars
        if acc.pinned and prompt_chars:
            acc.context_chars += _pinned_chars(steps, sizes.get(path, []), len(seed.get(path, "")))
    return accs


def _pinned_chars(steps: list[_Step], changes: list[tuple[int, int | None]], size: int) -> int:
    """A pinned file's characters summed over every model call: its size at the start of each step
    (a LOG write shows in that step's PLAN prompt too, which this leaves out) times the step's calls."""
    total, at = 0, 0
    for s in steps:
        while at < len(changes) and changes[at][0] < s.step:
            size = changes[at][1] or 0
            at += 1
        total += size * s.calls
    return total


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


def _longest_streak(steps: list[_Step]) -> tuple[int, int]:
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
    episode: dict[str, Any], steps: list[_Step], ops: list[_Op], digest: EpisodeDigest, window: int
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
        around("failure", 1, worst.step, f"{_plural(worst.invalid, 'invalid output')} at step {worst.step} "
               f"({len(invalid)} steps had some)")  # fmt: skip
        if invalid[0].step < worst.step - 2 * window:
            around("failure", 3, invalid[0].step, f"first invalid output at step {invalid[0].step}")
    refused = [o for o in ops if not o.ok]
    for rank, op in enumerate(dict.fromkeys([refused[0], refused[-1]]) if refused else []):
        note = f"refused {op.verb or 'operation'} {op.path} at step {op.step}: {_first_line(op.message)}"
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
) -> tuple[EpisodeDigest, dict[str, _FileAcc]]:
    eid = int(episode["id"])
    steps = _load_steps(store, eid)
    ops = _load_ops(store, eid)
    seed = json.loads(episode.get("memory_seed") or "{}")
    prompt_chars = store.prompt_chars(eid)
    accs = _file_stats(store, steps, ops, seed, info, prompt_chars)
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
        log_budget_exhausted=_log_budget_exhausted(store, eid, info.log_budget),
        files={p: a.stats() for p, a in accs.items()},
    )
    if _end_kind(episode) == "death":
        digest.died, digest.death_cause = True, _death_cause(store, episode)
    if steps:
        chosen = _select(_merge(_events(episode, steps, ops, digest, window)), max_windows)
        digest.windows = _windows(store, eid, steps, chosen)
    return digest, accs


# -- windows and step ranges as lines -------------------------------------------------------------
def _first_line(text: str | None, width: int = 120) -> str:
    line = (text or "").strip().split("\n")[0]
    return line if len(line) <= width else line[: width - 3] + "..."


def _turn_lines(store: Store, episode_id: int, start: int, end: int) -> dict[int, list[str]]:
    """Each step's model turns as "  LOG1 <parsed> -> <operation result>", a person's operations
    as "  HUMAN <verb> <path> -> <result>", in the order they ran."""
    calls = store.calls_between(episode_id, start, end)
    ops = store.memory_ops_between(episode_id, start, end)
    results: dict[int, list[str]] = {}
    entries: dict[int, list[tuple[str, int, list[str]]]] = {}
    for op_id, step, call_id, phase, verb, path, _ok, message, created in ops:
        if call_id is not None:
            results.setdefault(call_id, []).append(_first_line(message))
        else:
            line = f"  {phase or 'HUMAN'} {verb} {path} -> {_first_line(message)}"
            entries.setdefault(step, []).append((created or "", op_id, [line]))
    for call_id, step, phase, turn, parsed, valid, created in calls:
        label = f"{phase}{(turn or 0) + 1}"
        said = _first_line(parsed, 100) if valid else f"invalid: {_first_line(parsed, 100)}"
        outcome = results.get(call_id, [])
        lines = [f"  {label} {said}" + (f" -> {outcome[0]}" if outcome else "")]
        lines += [f"    -> {more}" for more in outcome[1:]]
        entries.setdefault(step, []).append((created or "", call_id, lines))
    return {step: [line for *_, lines in sorted(items) for line in lines] for step, items in entries.items()}


def _step_line(s: _Step, previous: float) -> str:
    line = f"step {s.step}: {s.action} ({s.source}) reward {s.reward:g}"
    if s.progression != previous:
        line += f" progression {s.progression:.2f}"
    if s.unlocked:
        line += f" unlocked {', '.join(s.unlocked)}"
    if s.invalid:
        line += f" [{_plural(s.invalid, 'invalid output')}]"
    return line


def _windows(store: Store, episode_id: int, steps: list[_Step], chosen: list[_Event]) -> list[Window]:
    out = []
    by_step = {s.step: i for i, s in enumerate(steps)}
    for e in chosen:
        turns = _turn_lines(store, episode_id, e.start, e.end)
        lines = []
        for s in steps[by_step.get(e.start, 0) : by_step.get(e.end, len(steps) - 1) + 1]:
            previous = steps[by_step[s.step] - 1].progression if by_step[s.step] else 0.0
            lines.append(_step_line(s, previous))
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
    files: dict[str, _FileAcc] = {}
    for episode in store.episodes(run_id):
        if episode_ids is not None and episode["id"] not in episode_ids:
            continue
        info = structure_info(store, episode.get("structure_id") or run["structure_id"], cache)
        digest, accs = _episode_digest(store, episode, info, window, max_windows_per_episode)
        episodes.append(digest)
        for path, acc in accs.items():
            files.setdefault(path, _FileAcc(path)).add(acc)
    finished = [e.progression for e in episodes if e.status == "finished"]
    mean, se = mean_se(finished or [e.progression for e in episodes])
    steps = sum(e.steps for e in episodes)
    tokens = sum(e.tokens_per_step * e.steps for e in episodes)
    return Digest(
        run_id=run_id,
        structure_id=run["structure_id"],
        game=run["game"] or "",
        episodes=episodes,
        files={p: a.stats() for p, a in files.items()},
        mean_progression=round(mean, 4),
        stderr=round(se, 4),
        tokens_per_step=round(tokens / steps, 1) if steps else 0.0,
        memory=run_metrics(store, [e.episode_id for e in episodes]),
    )


# -- the text -------------------------------------------------------------------------------------
class _Text:
    """Lines under a character budget; ``reserve`` keeps room for the notes that say what was left out."""

    def __init__(self, budget: int, width: int) -> None:
        self.budget, self.width = budget, width
        self.lines: list[str] = []
        self.used = 0

    def cut(self, line: str) -> str:
        return line if len(line) <= self.width else line[: self.width - 3] + "..."

    def fits(self, lines: Sequence[str], reserve: int = 0, limit: int | None = None) -> bool:
        size = sum(len(self.cut(line)) + 1 for line in lines)
        cap = self.budget if limit is None else min(self.budget, limit)
        return self.used + size + reserve <= cap

    def add(self, lines: Sequence[str], reserve: int = 0, limit: int | None = None) -> bool:
        if not self.fits(lines, reserve, limit):
            return False
        for line in lines:
            line = self.cut(line)
            self.lines.append(line)
            self.used += len(line) + 1
        return True

    def text(self) -> str:
        out = "\n".join(self.lines)
        return out if len(out) <= self.budget else out[: max(0, self.budget - 3)] + "..."


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _headline(d: Digest) -> list[str]:
    eps = d.episodes
    unfinished = [e for e in eps if e.unfinished]
    steps = sum(e.steps for e in eps)
    finished = len(eps) - len(unfinished)
    over = f"over {_plural(finished, 'finished episode')}" if finished else "over all episodes, none finished"
    statuses = ", ".join(f"{n} {s}" for s, n in _counts(e.status for e in unfinished).items())
    per = max(steps, 1)
    return [
        f"Digest of run {d.run_id} ({d.game}, structure {d.structure_id}): {_plural(len(eps), 'episode')}"
        + (f" ({len(unfinished)} unfinished: {statuses})" if unfinished else "")
        + f", {steps} steps",
        f"Progression {d.mean_progression:.2f} +/- {d.stderr:.2f} (mean +/- standard error {over})",
        f"Per step: {d.tokens_per_step:g} tokens, {sum(e.memory_ops for e in eps) / per:.2f} memory ops, "
        f"{sum(e.invalid_outputs for e in eps) / per:.3f} invalid outputs",
        f"Failures: {sum(e.invalid_outputs for e in eps)} invalid outputs, {sum(e.refused_ops for e in eps)} refused "
        f"memory ops, {sum(e.fallback_actions for e in eps)} fallback actions, "
        f"{_plural(sum(e.died for e in eps), 'death')}",
        f"Stalls: {sum(e.unchanged_observations for e in eps)} unchanged observations, longest streak without "
        f"reward {max((e.longest_zero_reward_streak for e in eps), default=0)} steps, "
        f"{sum(e.log_budget_exhausted for e in eps)} LOG phases ended without DONE",
        f"Memory: {d.memory.done_rate:.0%} of LOG turns answered DONE, {d.memory.empty_lookup_rate:.0%} of "
        f"{_plural(d.memory.lookups, 'look-up')} found nothing, {d.memory.unproductive_rate:.0%} of unrewarded "
        f"actions unproductive ({d.memory.stuck} stuck, {d.memory.oscillating} oscillating), memory context "
        f"{d.memory.memory_chars_per_step:.0f} chars (~{d.memory.memory_tokens_per_step:.0f} tokens) per step",
    ]


def _counts(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def _file_rows(files: dict[str, FileStats]) -> list[str]:
    width = min(24, max([4, *(len(p) for p in files)]))
    head = f"{'file':<{width}} pinned writes refused reads redundant lines chars growth/step share  note"
    rows = []
    for f in files.values():
        notes = ["never read"] if f.never_read else []
        if f.helper_writes:
            notes.append(f"{f.helper_writes} helper writes")  # not in the writes column
        note = ", ".join(notes)
        rows.append(
            f"{f.path[:width]:<{width}} {'yes' if f.pinned else 'no':<6} {f.writes:>6} {f.failed_writes:>7} "
            f"{f.reads:>5} {f.redundant_writes:>9} {f.final_lines:>5} {f.final_chars:>5} "
            f"{f.growth_chars_per_step:>11.2f} {f.context_share:>6.2%}  {note}".rstrip()
        )
    return [head, *rows]


def _episode_lines(e: EpisodeDigest) -> list[str]:
    status = f"finished ({e.ended_reason or 'done'})"
    if e.unfinished:
        status = f"UNFINISHED {e.status}" + (f" ({_first_line(e.error, 80)})" if e.error else "")
    unlocked = ", ".join(f"{name}@{step}" for step, name in e.achievements) or "none"
    lines = [
        f"ep {e.episode_id} seed {e.seed} {e.task}: {status}, {e.steps} steps, progression {e.progression:.2f}",
        f"  achievements (name@step): {unlocked}",
        f"  invalid {e.invalid_outputs}, refused ops {e.refused_ops}, fallback {e.fallback_actions}, unchanged obs "
        f"{e.unchanged_observations}, no-reward streak {e.longest_zero_reward_streak} from step "
        f"{e.zero_reward_streak_start}, memory ops {e.memory_ops}, tokens/step {e.tokens_per_step:g}",
    ]
    if e.died:
        lines.append(f"  died: {e.death_cause}")
    return lines


def _ordered_windows(episodes: list[EpisodeDigest]) -> list[Window]:
    # each episode's most important window first, then the second ones, ...: dropping from the end
    # drops the least important windows of the episodes that have the most
    ranked = [(rank, w.priority, index, w) for index, e in enumerate(episodes) for rank, w in enumerate(e.windows)]
    return [w for *_, w in sorted(ranked, key=lambda r: r[:3])]


def _render(d: Digest, budget: int) -> str:
    out = _Text(max(budget, 0), width=min(_LINE_WIDTH, max(40, budget // 6)))
    note = 60  # room kept for an "(N more ... omitted)" line
    for line in _headline(d):
        out.add([line])
    if not d.episodes:
        out.add(["(the run has no episodes)"])
        return out.text()
    out.add(["", "Memory files over all episodes (growth = chars per step; share = of prompt chars):"], note)
    head, *rows = _file_rows(d.files)
    section = out.used + int(budget * 0.35)  # the rest goes to episodes and windows
    out.add([head], note, limit=section)
    shown = 0
    for row in rows:
        if not out.add([row], note, limit=section):
            break
        shown += 1
    if shown < len(rows):
        out.add([f"({_plural(len(rows) - shown, 'more file')} omitted)"])
    out.add(["", "Episodes:"], note)
    section = out.used + int(budget * 0.3)
    shown = 0
    for e in d.episodes:
        if not out.add(_episode_lines(e), note, limit=section):
            break
        shown += 1
    if shown < len(d.episodes):
        out.add([f"({_plural(len(d.episodes) - shown, 'more episode')} omitted)"])
    windows = _ordered_windows(d.episodes)
    if not windows:
        return out.text()
    out.add(["", "Windows around failures and best moments (most important first):"], note)
    shown = 0
    for w in windows:
        head = f"[{w.kind}] ep {w.episode_id} steps {w.start}-{w.end}: {w.reason}"
        if out.add(["", head, *w.lines], note):
            shown += 1
            continue
        # the next window does not fit whole: keep the steps nearest its focus when a few fit
        part = _trim(w, lambda lines: out.fits(lines, note))
        if part and out.add(part, note):
            shown += 1
        break
    if shown < len(windows):
        out.add([f"({_plural(len(windows) - shown, 'more window')} omitted)"])
    return out.text()


def _trim(w: Window, fits: Callable[[list[str]], bool]) -> list[str] | None:
    """The window cut to the steps nearest its focus that fit, or None when not even one does."""
    groups: list[tuple[int, list[str]]] = []
    for line in w.lines:
        m = re.match(r"step (\d+):", line)
        if m:
            groups.append((int(m.group(1)), [line]))
        elif groups:
            groups[-1][1].append(line)
    chosen: list[tuple[int, list[str]]] = []
    for group in sorted(groups, key=lambda g: (abs(g[0] - w.focus), g[0])):
        trial = sorted([*chosen, group])
        if not fits(_cut_window(w, trial)):
            break
        chosen = trial
    return _cut_window(w, chosen) if chosen else None


def _cut_window(w: Window, groups: list[tuple[int, list[str]]]) -> list[str]:
    first, last = groups[0][0], groups[-1][0]
    head = f"[{w.kind}] ep {w.episode_id} steps {first}-{last} (cut from {w.start}-{w.end}): {w.reason}"
    return ["", head, *(line for _, lines in groups for line in lines)]


# -- tools for a critic that can call them --------------------------------------------------------
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "step_range",
            "description": (
                "Show steps start..end (inclusive) of one episode: each step's action, reward and "
                "progression, the first lines of its observation, helper notes, the model's LOG/PLAN "
                "turns and the memory operations with their results."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "episode_id": {"type": "integer", "description": "episode id as shown in the digest (ep N)"},
                    "start": {"type": "integer", "minimum": 0, "description": "first step (0-based)"},
                    "end": {"type": "integer", "minimum": 0, "description": "last step, inclusive"},
                    "max_chars": {
                        "type": "integer",
                        "minimum": 200,
                        "maximum": 20000,
                        "description": "cut the answer at this many characters (default 4000)",
                    },
                },
                "required": ["episode_id", "start", "end"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "memory_file_at",
            "description": (
                "The content of one memory file of an episode as it was after a step's memory "
                "operations (step 0 = after the first step)."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "episode_id": {"type": "integer", "description": "episode id as shown in the digest (ep N)"},
                    "path": {"type": "string", "description": "file path inside the memory folder, e.g. map.md"},
                    "step": {"type": "integer", "minimum": 0, "description": "step (0-based)"},
                },
                "required": ["episode_id", "path", "step"],
                "additionalProperties": False,
            },
        },
    },
]


def _range_error(store: Store, episode_id: int, steps: Sequence[int]) -> str | None:
    n = store.step_count(episode_id)
    if n is None:
        return f"error: no episode {episode_id}"
    if n == 0:
        return f"error: episode {episode_id} has no recorded steps"
    bad = [s for s in steps if not 0 <= s < n]
    if bad:
        return f"error: step {bad[0]} is out of range; episode {episode_id} has steps 0-{n - 1}"
    return None


def step_range(store: Store, episode_id: int, start: int, end: int, max_chars: int = 4000) -> str:
    """Steps ``start``..``end`` (inclusive) of an episode as text, cut at ``max_chars``."""
    error = _range_error(store, episode_id, [start, end])
    if error:
        return error
    if start > end:
        return f"error: start {start} is after end {end}"
    rows = store.steps_between(episode_id, start, end)
    before = store.progression_at(episode_id, start - 1)
    previous = before if before is not None else 0.0
    turns = _turn_lines(store, episode_id, start, end)
    out: list[str] = []
    used = 0
    for step, action, source, reward, progression, invalid, observation, notes in rows:
        s = _Step(step, action or "", source or "", float(reward or 0.0), float(progression or 0.0), (),
                  int(invalid or 0), 0, 0, False)  # fmt: skip
        obs = [line.strip() for line in (observation or "").split("\n") if line.strip()][:6]
        block = [_step_line(s, previous), "  observation: " + " | ".join(obs)]
        block += [f"  note: {_first_line(n)}" for n in (notes or "").split("\n") if n.strip()]
        block += turns.get(step, [])
        text = "\n".join(block)
        if used + len(text) + 1 > max_chars:
            rest = f"(cut at {max_chars} chars: steps {step}-{end} not shown; ask for a smaller range)"
            if not out:  # even one step is too long: show its beginning
                out.append(text[: max(0, max_chars - len(rest) - 5)] + " ...")
            out.append(rest)
            break
        out.append(text)
        used += len(text) + 1
        previous = s.progression
    return "\n".join(out)


def memory_file_at(store: Store, episode_id: int, path: str, step: int) -> str:
    """One memory file as it was after ``step``'s operations, rebuilt by the replay."""
    from automem.runs.replay import EpisodeReplay

    error = _range_error(store, episode_id, [step])
    if error:
        return error
    files = EpisodeReplay(store, episode_id).memory(step)
    if path not in files:
        return f"error: no file {path!r} after step {step} of episode {episode_id}; files: {', '.join(files) or 'none'}"
    content = files[path]
    size = f"{_plural(len(split_lines(content)), 'line')}, {len(content)} chars"
    head = f"{path} after step {step} of episode {episode_id} ({size}):"
    return f"{head}\n{content}" if content else f"{head}\n(empty)"


def _int_arg(arguments: dict[str, Any], name: str) -> int:
    value = arguments[name]
    if isinstance(value, bool):
        raise TypeError(name)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())  # models often quote numbers
    raise TypeError(name)


_PARAMS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


def call_tool(store: Store, name: str, arguments: dict[str, Any]) -> str:
    """Run one tool call of the critic; every problem comes back as an ``error: ...`` string."""
    if name not in _PARAMS:
        return f"error: unknown tool {name!r}; tools: {', '.join(_PARAMS)}"
    if isinstance(arguments, str):  # the raw JSON string an API returns
        try:
            arguments = json.loads(arguments or "{}")
        except ValueError as exc:
            return f"error: arguments are not valid JSON: {exc}"
    if not isinstance(arguments, dict):
        return "error: arguments must be a JSON object"
    params = _PARAMS[name]
    missing = [p for p in params["required"] if p not in arguments]
    unknown = [p for p in arguments if p not in params["properties"]]
    if missing or unknown:
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(unknown)}"] if unknown else []
        )
        return f"error: bad arguments for {name} ({'; '.join(problems)}); expected {', '.join(params['properties'])}"
    try:
        ints = {p: _int_arg(arguments, p) for p, spec in params["properties"].items()
                if spec["type"] == "integer" and p in arguments}  # fmt: skip
    except TypeError as exc:
        return f"error: {exc.args[0]} must be an integer"
    try:
        if name == "step_range":
            max_chars = min(max(ints.get("max_chars", 4000), 200), 20000)
            return step_range(store, ints["episode_id"], ints["start"], ints["end"], max_chars=max_chars)
        path = arguments["path"]
        if not isinstance(path, str) or not path.strip():
            return "error: path must be a non-empty string"
        return memory_file_at(store, ints["episode_id"], path.strip(), ints["step"])
    except Exception as exc:  # a tool answer, never a crash of the critic loop
        return f"error: {name} failed: {type(exc).__name__}: {exc}"
