"""The digest as text under a character budget, and the step lines it and the critic's tools show.

The budget is split so no part starves the others: the file table gets about a third, the
episodes about a third, windows the rest, most important first; a window that does not fit whole
is cut to the steps nearest its focus. Every line is cut at a width, so one step's long turn
cannot eat the budget.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from automem.optimize.digest.readers import Step
from automem.store.db import Store

if TYPE_CHECKING:  # the digest's classes call render(); importing them here would be a cycle
    from automem.optimize.digest.model import Digest, EpisodeDigest, FileStats, Window

_LINE_WIDTH = 160  # a digest line longer than this is cut: one step's turn must not eat the budget


# -- step lines (the digest's windows and step_range) ----------------------------------------------
def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def first_line(text: str | None, width: int = 120) -> str:
    line = (text or "").strip().split("\n")[0]
    return line if len(line) <= width else line[: width - 3] + "..."


def turn_lines(store: Store, episode_id: int, start: int, end: int) -> dict[int, list[str]]:
    """Each step's model turns as "  LOG1 <parsed> -> <operation result>", a person's operations
    as "  HUMAN <verb> <path> -> <result>", in the order they ran."""
    calls = store.calls_between(episode_id, start, end)
    ops = store.memory_ops_between(episode_id, start, end)
    results: dict[int, list[str]] = {}
    entries: dict[int, list[tuple[str, int, list[str]]]] = {}
    for op_id, step, call_id, phase, verb, path, _ok, message, created in ops:
        if call_id is not None:
            results.setdefault(call_id, []).append(first_line(message))
        else:
            line = f"  {phase or 'HUMAN'} {verb} {path} -> {first_line(message)}"
            entries.setdefault(step, []).append((created or "", op_id, [line]))
    for call_id, step, phase, turn, parsed, valid, created in calls:
        label = f"{phase}{(turn or 0) + 1}"
        said = first_line(parsed, 100) if valid else f"invalid: {first_line(parsed, 100)}"
        outcome = results.get(call_id, [])
        lines = [f"  {label} {said}" + (f" -> {outcome[0]}" if outcome else "")]
        lines += [f"    -> {more}" for more in outcome[1:]]
        entries.setdefault(step, []).append((created or "", call_id, lines))
    return {step: [line for *_, lines in sorted(items) for line in lines] for step, items in entries.items()}


def step_line(s: Step, previous: float) -> str:
    line = f"step {s.step}: {s.action} ({s.source}) reward {s.reward:g}"
    if s.progression != previous:
        line += f" progression {s.progression:.2f}"
    if s.unlocked:
        line += f" unlocked {', '.join(s.unlocked)}"
    if s.invalid:
        line += f" [{plural(s.invalid, 'invalid output')}]"
    return line


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


def _headline(d: Digest) -> list[str]:
    eps = d.episodes
    unfinished = [e for e in eps if e.unfinished]
    steps = sum(e.steps for e in eps)
    finished = len(eps) - len(unfinished)
    over = f"over {plural(finished, 'finished episode')}" if finished else "over all episodes, none finished"
    statuses = ", ".join(f"{n} {s}" for s, n in _counts(e.status for e in unfinished).items())
    per = max(steps, 1)
    return [
        f"Digest of run {d.run_id} ({d.game}, structure {d.structure_id}): {plural(len(eps), 'episode')}"
        + (f" ({len(unfinished)} unfinished: {statuses})" if unfinished else "")
        + f", {steps} steps",
        f"Progression {d.mean_progression:.2f} +/- {d.stderr:.2f} (mean +/- standard error {over})",
        f"Per step: {d.tokens_per_step:g} tokens, {sum(e.memory_ops for e in eps) / per:.2f} memory ops, "
        f"{sum(e.invalid_outputs for e in eps) / per:.3f} invalid outputs",
        f"Failures: {sum(e.invalid_outputs for e in eps)} invalid outputs, {sum(e.refused_ops for e in eps)} refused "
        f"memory ops, {sum(e.fallback_actions for e in eps)} fallback actions, "
        f"{plural(sum(e.died for e in eps), 'death')}",
        f"Stalls: {sum(e.unchanged_observations for e in eps)} unchanged observations, longest streak without "
        f"reward {max((e.longest_zero_reward_streak for e in eps), default=0)} steps, "
        f"{sum(e.log_budget_exhausted for e in eps)} LOG phases ended without DONE",
        f"Memory: {d.memory.done_rate:.0%} of LOG turns answered DONE, {d.memory.empty_lookup_rate:.0%} of "
        f"{plural(d.memory.lookups, 'look-up')} found nothing, {d.memory.unproductive_rate:.0%} of unrewarded "
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
            f"{f.path[:width]:<{width}} {'yes' if f.pinned else 'no':<6} {f.writes:>6} {f.refused_writes:>7} "
            f"{f.reads:>5} {f.redundant_writes:>9} {f.final_lines:>5} {f.final_chars:>5} "
            f"{f.growth_chars_per_step:>11.2f} {f.context_share:>6.2%}  {note}".rstrip()
        )
    return [head, *rows]


def _episode_lines(e: EpisodeDigest) -> list[str]:
    status = f"finished ({e.ended_reason or 'done'})"
    if e.unfinished:
        status = f"UNFINISHED {e.status}" + (f" ({first_line(e.error, 80)})" if e.error else "")
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


def render(d: Digest, budget: int) -> str:
    """:meth:`Digest.to_text`: always at most ``budget`` characters."""
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
        out.add([f"({plural(len(rows) - shown, 'more file')} omitted)"])
    out.add(["", "Episodes:"], note)
    section = out.used + int(budget * 0.3)
    shown = 0
    for e in d.episodes:
        if not out.add(_episode_lines(e), note, limit=section):
            break
        shown += 1
    if shown < len(d.episodes):
        out.add([f"({plural(len(d.episodes) - shown, 'more episode')} omitted)"])
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
        out.add([f"({plural(len(windows) - shown, 'more window')} omitted)"])
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
