"""What changed between two structures, split into structure and wording.

Loop 1 keeps a candidate only when it changes how memory works (files, caps, verbs, phases,
helpers, context); a candidate that only rewords prompts, purposes, formats or seeds is recorded
as wording. Each entry is one short human-readable line, e.g. ``files.map.md.max_lines: 30 -> 60``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from automem.memory.structure import FileSpec, HelperSpec, PhaseSpec, Structure

#: per-file fields that change behaviour (caps, visibility, permissions)
FILE_STRUCTURAL = ("max_lines", "max_chars", "overflow", "pinned", "read_only")
#: per-file fields that are wording or content
FILE_WORDING = ("purpose", "format", "seed")
OPERATION_FIELDS = (
    "allow_new_files",
    "max_files",
    "max_file_chars",
    "max_file_lines",
    "max_read_lines",
    "max_search_results",
    "max_text_chars",
)
PHASE_STRUCTURAL = ("budget", "max_tokens")


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _diff(label: str, old: Any, new: Any) -> list[str]:
    return [] if old == new else [f"{label}: {_show(old)} -> {_show(new)}"]


def helper_label(helper: HelperSpec) -> str:
    """``stuck_detector(window=6)``; a helper without parameters is just its name."""
    if not helper.params:
        return helper.name
    params = ", ".join(f"{k}={_show(v)}" for k, v in sorted(helper.params.items()))
    return f"{helper.name}({params})"


def _files(s: Structure) -> dict[str, FileSpec]:
    return {f.path: f for f in s.files}


def _phases(s: Structure) -> dict[str, PhaseSpec]:
    return {p.kind: p for p in s.phases}


def _verbs(s: Structure) -> list[str]:
    return [str(v) for v in s.operations.enabled]


def _file_changes(parent: Structure, child: Structure) -> list[str]:
    old, new = _files(parent), _files(child)
    out = [f"files: - {p}" for p in old if p not in new]
    out += [f"files: + {p}" for p in new if p not in old]
    for path in (p for p in new if p in old):
        for name in FILE_STRUCTURAL:
            out += _diff(f"files.{path}.{name}", getattr(old[path], name), getattr(new[path], name))
    return out


def _operation_changes(parent: Structure, child: Structure) -> list[str]:
    old, new = _verbs(parent), _verbs(child)
    out = [f"operations.enabled: - {v}" for v in old if v not in new]
    out += [f"operations.enabled: + {v}" for v in new if v not in old]
    for name in OPERATION_FIELDS:
        out += _diff(f"operations.{name}", getattr(parent.operations, name), getattr(child.operations, name))
    return out


def _phase_changes(parent: Structure, child: Structure) -> list[str]:
    old_kinds, new_kinds = [p.kind for p in parent.phases], [p.kind for p in child.phases]
    if old_kinds != new_kinds:
        return [f"phases: {', '.join(old_kinds)} -> {', '.join(new_kinds)}"]
    old, new = _phases(parent), _phases(child)
    out: list[str] = []
    for kind in new_kinds:
        for name in PHASE_STRUCTURAL:
            out += _diff(f"phases.{kind}.{name}", getattr(old[kind], name), getattr(new[kind], name))
    return out


def _helper_changes(parent: Structure, child: Structure) -> list[str]:
    old_names = Counter(h.name for h in parent.helpers)
    new_names = Counter(h.name for h in child.helpers)
    out: list[str] = []
    single = {n for n in old_names.keys() & new_names.keys() if old_names[n] == new_names[n] == 1}
    for name in sorted(single):  # the same helper on both sides: compare its parameters one by one
        old_params = next(h for h in parent.helpers if h.name == name).params
        new_params = next(h for h in child.helpers if h.name == name).params
        for key in sorted(old_params.keys() | new_params.keys()):
            out += _diff(f"helpers.{name}.{key}", old_params.get(key, "(default)"), new_params.get(key, "(default)"))
    # everything else (added, removed, or repeated helpers) compares as whole labelled items
    old_rest = Counter(helper_label(h) for h in parent.helpers if h.name not in single)
    new_rest = Counter(helper_label(h) for h in child.helpers if h.name not in single)
    out = [f"helpers: - {label}" for label in sorted((old_rest - new_rest).elements())] + out
    out = [f"helpers: + {label}" for label in sorted((new_rest - old_rest).elements())] + out
    return out


def structural_changes(parent: Structure, child: Structure) -> list[str]:
    """How ``child`` works differently from ``parent``; empty when they differ only in wording.

    Structural: files added/removed and their caps, overflow, pinned and read_only flags; enabled
    verbs and every operations limit; phase kinds, budgets and max_tokens; helpers and their
    parameters; context scope and history; the fallback action and the game.
    """
    out = _diff("game", parent.game, child.game)
    out += _file_changes(parent, child)
    out += _operation_changes(parent, child)
    out += _phase_changes(parent, child)
    out += _helper_changes(parent, child)
    out += _diff("context.scope", parent.context.scope, child.context.scope)
    out += _diff("context.history_steps", parent.context.history_steps, child.context.history_steps)
    out += _diff("fallback_action", parent.fallback_action, child.fallback_action)
    return out


def wording_changes(parent: Structure, child: Structure) -> list[str]:
    """The wording and content fields that changed, as field paths (``prompts.system``, ...).

    Wording: name, description, the system prompt, each file's purpose, format and seed, phase
    instructions, and the order of files, verbs or helpers (which only changes how the prompt lists them).
    """
    out: list[str] = []
    if parent.name != child.name:
        out.append("name")
    if parent.description != child.description:
        out.append("description")
    if parent.prompts.system != child.prompts.system:
        out.append("prompts.system")
    old_files, new_files = _files(parent), _files(child)
    for path in (p for p in new_files if p in old_files):
        out += [
            f"files.{path}.{name}"
            for name in FILE_WORDING
            if getattr(old_files[path], name) != getattr(new_files[path], name)
        ]
    common = [p for p in old_files if p in new_files]
    if common != [p for p in new_files if p in old_files]:
        out.append("files (order)")
    old_verbs, new_verbs = _verbs(parent), _verbs(child)
    if [v for v in old_verbs if v in new_verbs] != [v for v in new_verbs if v in old_verbs]:
        out.append("operations.enabled (order)")
    if parent.helpers != child.helpers and not _helper_changes(parent, child):
        out.append("helpers (order)")
    old_phases, new_phases = _phases(parent), _phases(child)
    for kind in (k for k in new_phases if k in old_phases):
        if old_phases[kind].instructions != new_phases[kind].instructions:
            out.append(f"phases.{kind}.instructions")
    return out
