"""The data behind the structure editor: what structures exist, their lineage, their YAML.

No Textual here: these are plain functions over the store and the Structure model, so the
screen stays thin and the logic is testable without an app.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

import yaml
from rich.text import Text

from automem.memory.structure import Structure, StructureError, builtin_names, load_builtin, structure_from_yaml
from automem.store.db import Store

#: a StructureError line: ``source:LINE: field: message`` (source may itself contain colons)
_ERROR_LINE = re.compile(r"^(?P<source>.*?):(?P<line>\d+): (?P<text>.*)$")


@dataclass(frozen=True)
class LoopDecision:
    """What loop 1 (``automem optimize``) decided on a structure its critic proposed."""

    status: str  # pending | accepted | rejected | invalid | failed
    reason: str  # why, with the paired figures (see automem.optimize.gate.Gate)
    changes: tuple[str, ...]  # the structural changes from its parent
    wording: tuple[str, ...]  # wording-only fields that changed too
    optimization: str
    iteration: int
    candidate: int
    critic: str

    @property
    def mark(self) -> Text:
        """✓ accepted, = a cheaper tie (on the front, not accepted), ✗ rejected, raced out or refused,
        … not judged yet."""
        if self.status == "accepted":
            return Text("✓", style="bold green")
        if self.status == "tied":
            return Text("=", style="bold yellow")
        if self.status == "pending":
            return Text("…", style="dim")
        return Text("✗", style="bold red")


@dataclass
class StructureEntry:
    """One row of the structure list: a built-in or a stored version, with its scores."""

    id: str
    structure: Structure
    builtin: bool
    created_at: str = ""
    episodes: int = 0
    mean_progression: float | None = None
    #: loop 1's decision when its critic proposed this structure
    decision: LoopDecision | None = None

    @property
    def name(self) -> str:
        return self.structure.name

    @property
    def game(self) -> str | None:
        return self.structure.game

    @property
    def parent(self) -> str | None:
        return self.structure.parent

    @property
    def author(self) -> str:
        return self.structure.author


def catalog(store: Store) -> tuple[list[StructureEntry], list[str]]:
    """Built-ins first, then stored rows oldest first; a row already listed (same id) is merged.

    Returns the entries and the problems met (a stored row that no longer validates is skipped
    with a message rather than breaking the whole screen).
    """
    entries: dict[str, StructureEntry] = {}
    problems: list[str] = []
    for name in builtin_names():
        try:
            s = load_builtin(name)
        except StructureError as exc:
            problems.append(str(exc))
            continue
        entries.setdefault(s.id, StructureEntry(s.id, s, builtin=True))
    for row in store.structures():
        if row["id"] in entries:
            entries[row["id"]].created_at = row["created_at"] or ""
            continue
        try:
            s = structure_from_yaml(row["yaml"], source=f"store:{row['id'][:8]}")
        except StructureError as exc:
            problems.append(str(exc))
            continue
        # the row's columns are the record of lineage; the id is the row's (the schema may have moved on)
        s = s.model_copy(update={"parent": row["parent"], "author": row["author"] or s.author})
        entries[row["id"]] = StructureEntry(row["id"], s, builtin=False, created_at=row["created_at"] or "")
    for sid, (episodes, mean) in store.structure_scores().items():
        if sid in entries:
            entries[sid].episodes, entries[sid].mean_progression = episodes, mean
    for sid, decision in loop_decisions(store).items():
        if sid in entries:
            entries[sid].decision = decision
    return list(entries.values()), problems


def loop_decisions(store: Store) -> dict[str, LoopDecision]:
    """Structure id -> loop 1's latest decision on it as a candidate (a judged one over a pending one)."""
    return {
        sid: LoopDecision(
            status=row["status"] or "pending",
            reason=row["reason"] or "",
            changes=tuple(_json_list(row["changes"])),
            wording=tuple(_json_list(row["wording"])),
            optimization=row["optimization"] or "",
            iteration=row["iteration"] or 0,
            candidate=row["candidate"] or 0,
            critic=row["critic"] or "",
        )  # fmt: skip
        for sid, row in store.candidate_decisions().items()
    }


def _json_list(text: str | None) -> list[str]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def tree_rows(entries: list[StructureEntry]) -> list[tuple[StructureEntry, str]]:
    """Entries in tree order (each version under its parent) with a tree-drawing prefix for the name."""
    ids = {e.id for e in entries}
    children: dict[str | None, list[StructureEntry]] = {}
    for e in entries:
        # a parent we do not know (deleted, or from another database) makes the entry a root
        key = e.parent if e.parent in ids and e.parent != e.id else None
        children.setdefault(key, []).append(e)
    out: list[tuple[StructureEntry, str]] = []

    def walk(parent: str | None, indent: str) -> None:
        kids = children.get(parent, [])
        for i, e in enumerate(kids):
            last = i == len(kids) - 1
            out.append((e, indent + ("└─ " if last else "├─ ") if parent is not None else ""))
            walk(e.id, (indent + ("   " if last else "│  ")) if parent is not None else "")

    walk(None, "")
    return out


def summary(entry: StructureEntry, *, next_episode: bool = False) -> Text:
    """A short reading of one structure: what it is for, its files, verbs, phases and scores."""
    s = entry.structure
    out = Text()
    out.append(s.name, "bold")
    out.append(f"  {entry.id[:8]}", "dim")
    if next_episode:
        out.append("  ● next episode", "bold green")
    out.append("\n")
    if s.description:
        out.append(s.description.strip() + "\n", "italic")
    if entry.episodes:
        out.append(f"{entry.episodes} finished episodes, mean progression {entry.mean_progression:.1f}%\n")
    phases = " → ".join(f"{p.kind}×{p.budget}" for p in s.phases)
    out.append("phases ", "dim").append(phases).append("   fallback ", "dim").append(s.fallback_action)
    out.append("\nverbs  ", "dim").append(", ".join(s.operations.enabled) or "none (no memory)")
    for f in s.files:
        flags = ", ".join(x for x in ("pinned" if f.pinned else "", "read-only" if f.read_only else "") if x)
        seed = f"seed {f.seed.count(chr(10)) + 1} lines" if f.seed else "empty"
        out.append("\n  ")
        out.append(f"{f.path:<14}", "bold")
        out.append(f" ≤{f.max_lines} lines ≤{f.max_chars} chars · {seed}" + (f" · {flags}" if flags else ""), "")
    if entry.decision is not None:
        out.append("\n").append(decision_text(entry.decision))
    return out


#: how each decision reads in the summary
_DECISION_STYLE = {
    "accepted": "bold green",
    "tied": "bold yellow",
    "rejected": "bold red",
    "raced_out": "red",
    "invalid": "bold red",
    "failed": "bold red",
}


def decision_text(d: LoopDecision) -> Text:
    """Loop 1's decision on a proposed structure: accepted or not and why (both scores), and what changed."""
    out = Text()
    out.append("loop 1 ", "dim").append_text(d.mark).append(" ")
    out.append(d.status if d.status != "pending" else "not judged yet", _DECISION_STYLE.get(d.status, "dim"))
    where = f"  {d.optimization} · " if d.optimization else "  "
    out.append(f"{where}iteration {d.iteration} candidate {d.candidate} · critic {d.critic}", "dim")
    if d.reason:
        out.append("\n  " + d.reason)
    out.append("\nchanges from its parent", "dim")
    if not d.changes:
        out.append("\n  none structural (wording only)")
    for change in d.changes:
        out.append("\n  • " + change)
    if d.wording:
        out.append("\n  wording: ", "dim").append(", ".join(d.wording))
    return out


# -- YAML for people ---------------------------------------------------------------------
class _EditorDumper(yaml.SafeDumper):
    """Multi-line strings (prompts, seeds) as ``|`` blocks: one text line per editor line."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_EditorDumper.add_representer(str, _str)


def dump_yaml(data: dict[str, Any]) -> str:
    # a huge width: PyYAML would otherwise fold long plain strings over several lines, which
    # reads like separate values in an editor that soft-wraps anyway
    return yaml.dump(data, Dumper=_EditorDumper, sort_keys=False, allow_unicode=True, width=10_000)


def editor_yaml(structure: Structure, *, lineage: bool = False) -> str:
    """The YAML shown for editing: content only (parent and author are set on save), or with lineage."""
    exclude = None if lineage else {"parent", "author"}
    return dump_yaml(structure.model_dump(mode="json", exclude=exclude))


def file_specs(text: str) -> list[dict[str, Any]]:
    """The ``files`` entries of a YAML text that need not validate (the seed editor works on drafts)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StructureError(f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        return []
    return [f for f in files if isinstance(f, dict) and isinstance(f.get("path"), str)]


def with_seeds(text: str, seeds: dict[str, str]) -> str:
    """``text`` with the named files' seed content replaced (re-dumped: comments do not survive)."""
    data = yaml.safe_load(text)
    for spec in data.get("files") or []:
        if isinstance(spec, dict) and spec.get("path") in seeds:
            spec["seed"] = seeds[spec["path"]]
    return dump_yaml(data)


def yaml_diff(before: str, after: str, before_name: str, after_name: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), fromfile=before_name, tofile=after_name
        )
    )


def error_lines(message: str) -> list[tuple[int | None, str]]:
    """Split a StructureError message into (1-based line or None, text without the source)."""
    out: list[tuple[int | None, str]] = []
    for raw in message.splitlines():
        m = _ERROR_LINE.match(raw)
        out.append((int(m["line"]), m["text"]) if m else (None, raw))
    return out
