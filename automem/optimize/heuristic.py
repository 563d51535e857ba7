"""``--critic heuristic``: a catalogue of structural mutations driven by the trajectory digest.

No model is involved: each mutation reads a few numbers from :class:`Signals` (filled by the loop
from the digest) and, when they call for it, derives a new version of the structure (cap a file's
lines, turn a growing map file into keyed upserts, drop a file never read, enable the stuck helper,
move a file between pinned and on demand, change turn budgets or history, switch on or tune the
helpers of :mod:`automem.optimize.helper_mutations`). This lets loop 1 run
without a strong critic model; its output should be labelled with :data:`CRITIC_LABEL`.

Every child is validated (``Structure.derive``), has ``author="heuristic"`` and its parent's id,
and differs from its parent structurally (see :func:`automem.optimize.changes.structural_changes`).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from automem.memory.structure import FileSpec, Structure
from automem.optimize.changes import structural_changes
from automem.optimize.digest import FileStats

AUTHOR = "heuristic"
CRITIC_LABEL = "heuristic critic (rule-based mutations, no model)"

# thresholds: a signal at its threshold scores about 1; scores are capped at MAX_SCORE
GROWTH = 5.0  # chars/step: a file gaining about a line every 8 steps
NEAR_CAP = 0.8  # share of max_lines filled
KEYED_MIN_APPENDS = 3
KEYED_GROWTH = 2.0
PIN_READS_PER_STEP = 0.2
PIN_MAX_LINES = 15
UNPIN_SHARE = 0.25
UNCHANGED_RATE = 0.15
STUCK_RATE = 0.25
ZERO_REWARD_STREAK = 25
INVALID_RATE = 0.1
LOG_EXHAUSTED_RATE = 0.3
RARE_WRITES_PER_STEP = 0.1
MIN_STEPS = 10  # below this, "rare" and "never" say little
MAX_SCORE = 5.0
LINE_CHARS = 25  # a typical memory line; estimates appends from growth when the digest has no count
KEYED_FORMAT = "keyed lines, key: value"


@dataclass
class Signals:
    """The digest's numbers the heuristic critic reads; the loop fills what it has.

    ``files`` holds the digest's own :class:`FileStats` (the run's figures per file)."""

    steps: int = 0  # total steps over the episodes
    invalid_rate: float = 0.0  # invalid outputs per step
    unchanged_rate: float = 0.0  # share of steps with an unchanged observation
    longest_zero_reward_streak: int = 0
    files: dict[str, FileStats] = field(default_factory=dict)
    log_budget_exhausted_rate: float = 0.0  # share of steps whose LOG phase ran out of turns
    oscillation_rate: float = 0.0  # oscillating steps / unrewarded steps (the memory metrics)
    starvation_deaths: int = 0  # episodes that died with food, drink or hunger critical
    lookups: int = 0  # the model's memory look-ups
    empty_lookup_rate: float = 0.0  # of those, the share that found nothing

    def file(self, path: str) -> FileStats:
        return self.files.get(path) or FileStats(path)

    def per_step(self, count: float) -> float:
        return count / self.steps if self.steps > 0 else 0.0


@dataclass
class Mutation:
    name: str
    reason: str
    structure: Structure
    score: float = 0.0  # how strongly the signals call for it; propose() ranks by this

    def changes(self, parent: Structure) -> list[str]:
        return structural_changes(parent, self.structure)


MutationFn = Callable[[Structure, Signals], "Mutation | None"]
_Candidates = Callable[[Structure, Signals], list[Mutation]]


# -- building children ----------------------------------------------------------------------
def _child(parent: Structure, name: str, reason: str, score: float, **changes: Any) -> Mutation | None:
    """A validated, structurally different child, or None (invalid or wording-only)."""
    try:
        child = parent.derive(author=AUTHOR, **changes)
    except (ValidationError, ValueError):
        return None
    if child.id == parent.id or not structural_changes(parent, child):
        return None
    return Mutation(name=name, reason=reason, structure=child, score=round(min(MAX_SCORE, max(0.0, score)), 6))


def _files_with(s: Structure, path: str, **updates: Any) -> list[dict[str, Any]]:
    return [{**f.model_dump(mode="json"), **updates} if f.path == path else f.model_dump(mode="json") for f in s.files]


def _seed_lines(spec: FileSpec) -> int:
    return spec.seed.count("\n") + 1  # as FileSpec counts it (an empty seed is one line)


def _lowered(spec: FileSpec) -> tuple[int, int] | None:
    """Two thirds of the file's caps, never below what its seed needs; None when nothing is lower."""
    lines = max(_seed_lines(spec), 2, spec.max_lines * 2 // 3)
    chars = max(len(spec.seed), 16, spec.max_chars * 2 // 3)
    if lines >= spec.max_lines:
        return None
    return lines, min(chars, spec.max_chars)


def _keyed(spec: FileSpec) -> bool:
    return "key" in spec.format.lower()


def _rolling_log(spec: FileSpec) -> bool:
    """A file declared as a log (one line per entry, or dropping its oldest lines), not a keyed map."""
    return not _keyed(spec) and (spec.overflow == "drop_oldest" or " per " in f" {spec.format} ")


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _appends(fs: FileStats, steps: int) -> tuple[int, str]:
    """The file's appends, and how to say it: counted, or estimated as growth over a line's length."""
    if fs.appends or not fs.writes:
        return fs.appends, f"{fs.appends}"
    estimate = min(fs.writes, int(fs.growth_chars_per_step * steps / LINE_CHARS))
    return estimate, f"~{estimate}"


def _log_like(spec: FileSpec, fs: FileStats, steps: int) -> bool:
    if _keyed(spec):
        return False
    writes = max(fs.writes, fs.appends)
    appends = _appends(fs, steps)[0]
    return spec.overflow == "drop_oldest" or (writes > 0 and appends * 2 >= writes) or " per " in spec.format


def _mentioned(s: Structure, path: str) -> bool:
    texts = [s.prompts.system, *(p.instructions for p in s.phases)]
    pattern = re.compile(rf"(?<![\w.-]){re.escape(path)}(?![\w-])")
    return any(pattern.search(t) for t in texts)


def _fill(spec: FileSpec, fs: FileStats) -> float:
    return fs.final_lines / spec.max_lines


def _near_cap(spec: FileSpec, fs: FileStats) -> bool:
    return fs.refused_writes > 0 or (fs.final_lines > 0 and _fill(spec, fs) >= NEAR_CAP)


# -- the catalogue ----------------------------------------------------------------------------
def _cap_lines(s: Structure, sig: Signals) -> list[Mutation]:
    """Near the cap: a log keeps its newest lines, a file that is read gets room; a fast-growing
    file that is rarely read (or crowds the context) gets a tighter cap."""
    out: list[Mutation] = []
    for spec in s.files:
        if spec.read_only:
            continue
        fs = sig.file(spec.path)
        writes = max(fs.writes, fs.appends)
        refused_share = fs.refused_writes / writes if writes else 0.0
        at = f"{spec.path} is at {fs.final_lines}/{spec.max_lines} lines with {fs.refused_writes} refused writes"
        if _near_cap(spec, fs) and spec.overflow == "refuse" and _log_like(spec, fs, sig.steps):
            appends = _appends(fs, sig.steps)[1]
            reason = f"{at}; {appends} of {writes} writes are appends, so a rolling log keeps the newest lines"
            files = _files_with(s, spec.path, overflow="drop_oldest")
            m = _child(s, "cap_lines", reason, 1.0 + _fill(spec, fs) + refused_share, files=files)
            out += [m] if m else []
        if _near_cap(spec, fs) and fs.reads > 0 and spec.max_lines < 2000:
            lines = min(2000, max(spec.max_lines + 1, math.ceil(spec.max_lines * 1.5)))
            chars = min(100_000, max(spec.max_chars, math.ceil(spec.max_chars * 1.5)))
            reason = f"{at} and was read {_times(fs.reads)}: give it room"
            score = 0.8 + _fill(spec, fs) + refused_share + 0.5 * min(1.0, fs.reads / max(1, writes))
            files = _files_with(s, spec.path, max_lines=lines, max_chars=chars)
            m = _child(s, "cap_lines", reason, score, files=files)
            out += [m] if m else []
        rarely_read = fs.reads * 4 <= writes
        if fs.growth_chars_per_step >= GROWTH and (rarely_read or fs.context_share >= 0.2):
            lowered = _lowered(spec)
            if lowered is None:
                continue
            lines, chars = lowered
            updates: dict[str, Any] = {"max_lines": lines, "max_chars": chars}
            if _log_like(spec, fs, sig.steps):
                updates["overflow"] = "drop_oldest"  # a tighter log should roll, not refuse
            reason = (
                f"{spec.path} grew {fs.growth_chars_per_step:.0f} chars/step with {writes} writes and "
                f"{fs.reads} reads (context share {fs.context_share:.0%}): cap it at {lines} lines"
            )
            score = 0.5 * fs.growth_chars_per_step / GROWTH + 2 * fs.context_share
            m = _child(s, "cap_lines", reason, score, files=_files_with(s, spec.path, **updates))
            out += [m] if m else []
    return out


def _keyed_upserts(s: Structure, sig: Signals) -> list[Mutation]:
    """A growing file written mostly by appends becomes keyed lines updated in place (upsert).

    Rolling logs (one line per entry, drop_oldest) are left alone: appending is what they are for.
    """
    out: list[Mutation] = []
    verbs = [str(v) for v in s.operations.enabled]
    for spec in s.files:
        if spec.read_only or _rolling_log(spec):
            continue
        fs = sig.file(spec.path)
        writes = max(fs.writes, fs.appends)
        appends, said = _appends(fs, sig.steps)
        if appends < KEYED_MIN_APPENDS or appends * 2 <= writes or fs.growth_chars_per_step < KEYED_GROWTH:
            continue
        grew = (
            f"{spec.path} grew {fs.growth_chars_per_step:.0f} chars/step with {said} appends "
            f"(of {writes} writes) and {fs.reads} reads"
        )
        fmt = spec.format if _keyed(spec) else KEYED_FORMAT
        score = 1.0 + min(1.5, fs.growth_chars_per_step / 20) + 0.5 * appends / writes
        if "upsert" not in verbs:
            reason = f"{grew}: enable upsert so a key's line is replaced instead of appended"
            ops = {**s.operations.model_dump(mode="json"), "enabled": [*verbs, "upsert"]}
            m = _child(s, "keyed_upserts", reason, score, files=_files_with(s, spec.path, format=fmt), operations=ops)
        else:
            # upsert is there but unused: half the cap, refusing new lines, pushes updates in place
            updates: dict[str, Any] = {"format": fmt, "overflow": "refuse"}
            lines = max(_seed_lines(spec), 2, spec.max_lines // 2)
            if lines < spec.max_lines:
                updates["max_lines"] = lines
                updates["max_chars"] = max(len(spec.seed), 16, spec.max_chars // 2)
            reason = (
                f"{grew} although upsert is enabled: cap it at {updates.get('max_lines', spec.max_lines)} lines "
                "and refuse overflow so keys are updated in place"
            )
            m = _child(s, "keyed_upserts", reason, score - 0.4, files=_files_with(s, spec.path, **updates))
        out += [m] if m else []
    return out


def _drop_unread(s: Structure, sig: Signals) -> list[Mutation]:
    """A file never read (not pinned, not read-only, not named in the prompts) is dropped."""
    out: list[Mutation] = []
    for spec in s.files:
        fs = sig.file(spec.path)
        if not fs.never_read or spec.pinned or fs.pinned or spec.read_only or _mentioned(s, spec.path):
            continue
        if s.uses_memory and len(s.files) <= 1:
            continue  # memory stays usable: keep at least one file
        reason = (
            f"{spec.path} was never read in {sig.steps} steps despite {fs.writes} writes "
            f"(context share {fs.context_share:.0%})"
        )
        score = 0.8 + min(1.0, 2 * sig.per_step(fs.writes)) + fs.context_share
        files = [f.model_dump(mode="json") for f in s.files if f.path != spec.path]
        m = _child(s, "drop_unread", reason, score, files=files)
        out += [m] if m else []
    return out


def _enable_stuck_helper(s: Structure, sig: Signals) -> list[Mutation]:
    """Loops without progress switch on the unchanged-observation warning or the stuck detector."""
    out: list[Mutation] = []
    helpers = [h.model_dump(mode="json") for h in s.helpers]
    unchanged = f"{sig.unchanged_rate:.0%} of steps left the observation unchanged"
    streak = f"the longest zero-reward streak was {sig.longest_zero_reward_streak} steps"
    if s.helper("unchanged_observation") is None and sig.unchanged_rate >= UNCHANGED_RATE:
        new = [*helpers, {"name": "unchanged_observation", "params": {}}]
        m = _child(s, "enable_stuck_helper", unchanged, sig.unchanged_rate / UNCHANGED_RATE, helpers=new)
        out += [m] if m else []
    stuck = s.helper("stuck_detector")
    called = sig.longest_zero_reward_streak >= ZERO_REWARD_STREAK or sig.unchanged_rate >= STUCK_RATE
    score = max(sig.longest_zero_reward_streak / ZERO_REWARD_STREAK, sig.unchanged_rate / STUCK_RATE)
    if stuck is None and called:
        new = [*helpers, {"name": "stuck_detector", "params": {"window": 6}}]
        m = _child(s, "enable_stuck_helper", f"{streak}; {unchanged}", score, helpers=new)
        out += [m] if m else []
    elif stuck is not None:
        window = int(stuck.params.get("window", 6))
        if sig.longest_zero_reward_streak >= max(ZERO_REWARD_STREAK, 4 * window) and window > 3:
            smaller = max(3, window // 2)
            new = [
                {**h, "params": {**h["params"], "window": smaller}} if h["name"] == "stuck_detector" else h
                for h in helpers
            ]
            reason = f"{streak} with the stuck detector on (window {window}): warn after {smaller} steps"
            m = _child(s, "enable_stuck_helper", reason, 0.5 * score, helpers=new)
            out += [m] if m else []
    return out


def _toggle_pinned(s: Structure, sig: Signals) -> list[Mutation]:
    """Pin a small file read very often; unpin a big pinned file that is rarely written."""
    out: list[Mutation] = []
    can_read = bool(s.read_verbs())
    for spec in s.files:
        fs = sig.file(spec.path)
        rate = sig.per_step(fs.reads)
        if not spec.pinned and fs.reads >= 3 and rate >= PIN_READS_PER_STEP and fs.final_lines <= PIN_MAX_LINES:
            reason = (
                f"{spec.path} was read {_times(fs.reads)} in {sig.steps} steps ({rate:.2f}/step) "
                f"and holds {fs.final_lines} lines: pin it"
            )
            m = _child(
                s, "toggle_pinned", reason, rate / PIN_READS_PER_STEP, files=_files_with(s, spec.path, pinned=True)
            )
            out += [m] if m else []
        rarely_written = fs.writes <= max(1, int(0.02 * sig.steps))
        if spec.pinned and can_read and fs.context_share >= UNPIN_SHARE and rarely_written:
            reason = (
                f"{spec.path} is pinned and takes {fs.context_share:.0%} of the context but was written "
                f"{_times(fs.writes)} in {sig.steps} steps: read it on demand"
            )
            score = fs.context_share / UNPIN_SHARE
            m = _child(s, "toggle_pinned", reason, score, files=_files_with(s, spec.path, pinned=False))
            out += [m] if m else []
    return out


def _phases_with(s: Structure, kind: str, **updates: Any) -> list[dict[str, Any]]:
    return [{**p.model_dump(mode="json"), **updates} if p.kind == kind else p.model_dump(mode="json") for p in s.phases]


def _turn_budgets(s: Structure, sig: Signals) -> list[Mutation]:
    """More LOG turns when writing runs out of them; fewer turns or tokens when output is invalid."""
    out: list[Mutation] = []
    log = next((p for p in s.phases if p.kind == "LOG"), None)
    writes = sum(max(f.writes, f.appends) for f in sig.files.values())
    wps = sig.per_step(writes)
    invalid = f"{sig.invalid_rate:.0%} of steps had invalid output"
    if log is not None and log.budget < 16 and sig.invalid_rate < 2 * INVALID_RATE:
        busy = wps >= 0.9 * log.budget
        if sig.log_budget_exhausted_rate >= LOG_EXHAUSTED_RATE or busy:
            reason = (
                f"LOG ran out of turns on {sig.log_budget_exhausted_rate:.0%} of steps with {wps:.2f} writes/step "
                f"(budget {log.budget}): allow {log.budget + 1}"
            )
            score = max(sig.log_budget_exhausted_rate / LOG_EXHAUSTED_RATE, wps / (0.9 * log.budget))
            m = _child(s, "turn_budgets", reason, score, phases=_phases_with(s, "LOG", budget=log.budget + 1))
            out += [m] if m else []
    if log is not None and log.budget > 1:
        rare = bool(sig.files) and sig.steps >= MIN_STEPS and wps <= RARE_WRITES_PER_STEP  # files: tracked
        if sig.invalid_rate >= INVALID_RATE or rare:
            why = invalid if sig.invalid_rate >= INVALID_RATE else f"only {wps:.2f} writes/step"
            reason = f"{why}: LOG budget {log.budget} -> {log.budget - 1}"
            score = max(sig.invalid_rate / INVALID_RATE, 1.0 if rare else 0.0)
            m = _child(s, "turn_budgets", reason, score, phases=_phases_with(s, "LOG", budget=log.budget - 1))
            out += [m] if m else []
    if sig.invalid_rate >= INVALID_RATE and any(p.max_tokens > 16 for p in s.phases):
        phases = [{**p.model_dump(mode="json"), "max_tokens": max(16, p.max_tokens * 3 // 4)} for p in s.phases]
        tokens = ", ".join(f"{p.kind} {p.max_tokens} -> {max(16, p.max_tokens * 3 // 4)}" for p in s.phases)
        reason = f"{invalid}: shorter turns ({tokens} tokens)"
        m = _child(s, "turn_budgets", reason, 0.7 * sig.invalid_rate / INVALID_RATE, phases=phases)
        out += [m] if m else []
    return out


def _history_steps(s: Structure, sig: Signals) -> list[Mutation]:
    """Longer history when the agent repeats itself; shorter when its output goes invalid."""
    out: list[Mutation] = []
    h = s.context.history_steps
    ctx = s.context.model_dump(mode="json")
    repeats = sig.unchanged_rate >= 0.2 or sig.longest_zero_reward_streak >= 30
    if repeats and h < 12:
        reason = (
            f"{sig.unchanged_rate:.0%} unchanged observations and a zero-reward streak of "
            f"{sig.longest_zero_reward_streak} steps: show {h + 2} past steps instead of {h}"
        )
        score = 0.7 * max(sig.unchanged_rate / 0.2, sig.longest_zero_reward_streak / 30)
        m = _child(s, "history_steps", reason, score, context={**ctx, "history_steps": h + 2})
        out += [m] if m else []
    if sig.invalid_rate >= 1.5 * INVALID_RATE and h > 1:
        shorter = max(1, h // 2)
        reason = f"{sig.invalid_rate:.0%} of steps had invalid output: show {shorter} past steps instead of {h}"
        score = 0.7 * sig.invalid_rate / (1.5 * INVALID_RATE)
        m = _child(s, "history_steps", reason, score, context={**ctx, "history_steps": shorter})
        out += [m] if m else []
    return out


def _carry_memory(s: Structure, sig: Signals) -> list[Mutation]:
    """Files the agent writes and reads back start empty every episode: carry them from one episode
    to the next (``context.scope: run``; eval then plays each task's seeds as a chain)."""
    if s.context.scope == "run" or sig.steps < MIN_STEPS:
        return []
    used = [
        fs for fs in sig.files.values()
        if fs.writes > fs.redundant_writes and sig.per_step(fs.reads) >= PIN_READS_PER_STEP
    ]  # fmt: skip
    if not used:
        return []
    reads = sum(sig.per_step(fs.reads) for fs in used)
    names = ", ".join(sorted(fs.path for fs in used))
    reason = (
        f"{names} got new content and {reads:.2f} reads per step, yet every episode starts them over: "
        "carry memory across episodes"
    )
    m = _child(s, "carry_memory", reason, 0.5 * reads / PIN_READS_PER_STEP, context={**s.context.model_dump(),
               "scope": "run"})  # fmt: skip
    return [m] if m else []


#: every candidate per mutation kind, strongest first after sorting
_CATALOGUE: dict[str, _Candidates] = {
    "cap_lines": _cap_lines,
    "keyed_upserts": _keyed_upserts,
    "drop_unread": _drop_unread,
    "enable_stuck_helper": _enable_stuck_helper,
    "toggle_pinned": _toggle_pinned,
    "turn_budgets": _turn_budgets,
    "history_steps": _history_steps,
    "carry_memory": _carry_memory,
}

# helper mutations live in their own module and build on _child and Signals above
from automem.optimize.helper_mutations import switch_on_helpers  # noqa: E402

_CATALOGUE["switch_on_helpers"] = switch_on_helpers


def _best(fn: _Candidates) -> MutationFn:
    def mutate(structure: Structure, signals: Signals) -> Mutation | None:
        found = fn(structure, signals)
        return max(found, key=lambda m: m.score) if found else None  # max keeps the first of equals

    mutate.__name__ = fn.__name__.lstrip("_")
    mutate.__doc__ = fn.__doc__
    return mutate


#: name -> ``(structure, signals) -> Mutation | None``: the strongest application, None when it does not apply
MUTATIONS: dict[str, MutationFn] = {name: _best(fn) for name, fn in _CATALOGUE.items()}


def candidates(structure: Structure, signals: Signals) -> list[Mutation]:
    """Every applicable mutation (several per kind when several files call for it), unranked."""
    return [m for fn in _CATALOGUE.values() for m in fn(structure, signals)]


def propose(
    structure: Structure,
    signals: Signals,
    k: int,
    seed: int = 0,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> list[Mutation]:
    """Up to ``k`` distinct children, strongest signal first; deterministic for a given ``seed``.

    The best candidate of each kind comes before second choices of any kind, so a small ``k``
    tries different ideas; equal scores are ordered by ``seed``. Children whose id is in
    ``exclude`` (already tried) and no-ops are skipped.
    """
    if k <= 0:
        return []
    rng = random.Random(seed)
    found = candidates(structure, signals)
    ranked = [m for _, _, _, m in sorted((-m.score, rng.random(), i, m) for i, m in enumerate(found))]
    firsts: list[Mutation] = []
    rest: list[Mutation] = []
    kinds: set[str] = set()
    for m in ranked:
        (rest if m.name in kinds else firsts).append(m)
        kinds.add(m.name)
    out: list[Mutation] = []
    seen = set(exclude) | {structure.id}
    for m in firsts + rest:
        if m.structure.id in seen:
            continue
        seen.add(m.structure.id)
        out.append(m)
        if len(out) == k:
            break
    return out
