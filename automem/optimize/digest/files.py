"""Per-file statistics of one episode, summed over a run into :class:`FileStats`.

A write is judged redundant without loading texts where possible: texts are content-addressed, so
equal before/after ids mean equal content; only an adding verb's before text is fetched, to see
whether the lines it added were already there. Sizes come from the store (``after_chars``), and a
file's final text is fetched once per episode for its line count.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from automem.memory.ops import ADDING_VERBS, READ_VERBS, added_lines_present, split_lines
from automem.optimize.digest.model import FileStats
from automem.optimize.digest.readers import Op, Step, StructureInfo
from automem.store.db import Store

READS = frozenset(v.value for v in READ_VERBS)
# a search/count over '*' lists "path:3: text" or "path: 3 lines, ..." per file
_STAR_LINE = re.compile(r"^([^\s:]+):(?:\d+:)?\s")


@dataclass
class FileStatsBuilder:
    """Builds one file's :class:`FileStats`: raw sums (sizes, steps, characters of context and of
    prompts), so episodes add up before shares and means are taken; :meth:`build` takes them."""

    path: str
    pinned: bool = False
    writes: int = 0
    refused_writes: int = 0
    reads: int = 0
    redundant_writes: int = 0
    helper_writes: int = 0
    appends: int = 0
    final_lines: int = 0
    final_chars: int = 0
    episodes: int = 0
    growth: int = 0
    steps: int = 0
    context_chars: int = 0
    prompt_chars: int = 0

    def add(self, other: FileStatsBuilder) -> None:
        self.pinned = self.pinned or other.pinned
        for name in ("writes", "refused_writes", "reads", "redundant_writes", "helper_writes", "appends",
                     "final_lines", "final_chars", "episodes", "growth", "steps", "context_chars",
                     "prompt_chars"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def build(self) -> FileStats:
        episodes = max(self.episodes, 1)
        return FileStats(
            path=self.path,
            writes=self.writes,
            refused_writes=self.refused_writes,
            reads=self.reads,
            redundant_writes=self.redundant_writes,
            final_lines=round(self.final_lines / episodes),
            final_chars=round(self.final_chars / episodes),
            growth_chars_per_step=round(self.growth / self.steps, 3) if self.steps else 0.0,
            context_share=round(self.context_chars / self.prompt_chars, 4) if self.prompt_chars else 0.0,
            never_read=self.reads == 0 and not self.pinned,
            pinned=self.pinned,
            appends=self.appends,
            helper_writes=self.helper_writes,
        )


def _read_targets(op: Op) -> list[tuple[str, int]]:
    """(file, characters returned) for one successful read; '*' reads are split by the files listed."""
    if op.path != "*":
        return [(op.path, op.message_chars)]
    out: dict[str, int] = {}
    for line in (op.message or "").split("\n"):
        m = _STAR_LINE.match(line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0) + len(line) + 1
    return list(out.items())


def file_stats(
    store: Store, steps: list[Step], ops: list[Op], seed: dict[str, str], info: StructureInfo, prompt_chars: int
) -> dict[str, FileStatsBuilder]:
    """One episode's sums per file: the structure's files, the seeded ones and any written."""
    ok_paths = {o.path for o in ops if o.ok and o.path and o.path != "*" and o.verb not in READS}
    ok_paths |= {json.loads(o.args).get("new_path", "") for o in ops if o.ok and o.verb == "rename"}
    order = [*info.files, *seed, *sorted(ok_paths)]
    accs = {p: FileStatsBuilder(p, pinned=p in info.pinned) for p in dict.fromkeys(order) if p}
    # path -> [(step, size after)] for writes; None once deleted or renamed away
    sizes: dict[str, list[tuple[int, int | None]]] = {}
    last_text: dict[str, str | None] = {}
    to_check: list[Op] = []
    for op in ops:
        if op.verb in READS:
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
            acc.refused_writes += 1
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
            acc.redundant_writes += 1  # texts are content-addressed: equal ids, equal content
        elif op.verb in ADDING_VERBS and op.before_id is not None:
            to_check.append(op)
    befores = store.texts_by_id(o.before_id for o in to_check if o.before_id)
    for op in to_check:
        if added_lines_present(op.verb, json.loads(op.args or "{}"), befores.get(op.before_id or "", "")):
            accs[op.path].redundant_writes += 1
    finals = store.texts_by_id(t for t in last_text.values() if t)
    for path, acc in accs.items():
        final = finals.get(last_text[path] or "", "") if path in last_text else seed.get(path, "")
        acc.final_lines, acc.final_chars = len(split_lines(final)), len(final)
        acc.growth = len(final) - len(seed.get(path, ""))
        acc.episodes, acc.steps, acc.prompt_chars = 1, len(steps), prompt_chars
        if acc.pinned and prompt_chars:
            acc.context_chars += _pinned_chars(steps, sizes.get(path, []), len(seed.get(path, "")))
    return accs


def _pinned_chars(steps: list[Step], changes: list[tuple[int, int | None]], size: int) -> int:
    """A pinned file's characters summed over every model call: its size at the start of each step
    (a LOG write shows in that step's PLAN prompt too, which this leaves out) times the step's calls."""
    total, at = 0, 0
    for s in steps:
        while at < len(changes) and changes[at][0] < s.step:
            size = changes[at][1] or 0
            at += 1
        total += size * s.calls
    return total
