from __future__ import annotations

import pytest

from automem.memory.ops import Verb
from automem.memory.structure import (
    StructureError,
    builtin_names,
    load_builtin,
    resolve_structure,
    structure_from_yaml,
)


def test_builtins_validate_and_cover_every_game() -> None:
    names = builtin_names()
    assert {"crafter-v0", "nethack-v0", "minihack-v0", "none"} <= set(names)
    for name in names:
        s = load_builtin(name)
        assert s.name == name
        assert len(s.id) == 12


def test_none_is_the_memoryless_baseline() -> None:
    s = load_builtin("none")
    assert s.files == [] and s.operations.enabled == [] and [p.kind for p in s.phases] == ["ACT"]


def test_nethack_has_prefilled_read_only_rules_and_symbols() -> None:
    s = load_builtin("nethack-v0")
    files = {f.path: f for f in s.files}
    assert files["rules.md"].read_only and "stairs" in files["rules.md"].seed
    assert files["symbols.md"].read_only and "@ = you" in files["symbols.md"].seed


def test_content_hash_tracks_content_not_lineage() -> None:
    s = load_builtin("crafter-v0")
    same = s.model_copy(update={"author": "person", "parent": "abc"})
    assert same.id == s.id
    child = s.derive(author="person", context={"history_steps": 2, "scope": "episode"})
    assert child.id != s.id and child.parent == s.id and child.author == "person"
    assert s.context.history_steps == 4  # the original is untouched


def test_yaml_round_trip_keeps_identity() -> None:
    s = load_builtin("nethack-v0")
    again = structure_from_yaml(s.to_yaml())
    assert again.id == s.id and again == s


def test_memory_limits_follow_the_files() -> None:
    limits = load_builtin("crafter-v0").memory_limits()
    assert limits.files["actions.md"].overflow == "drop_oldest"
    assert limits.files["strategy.md"].max_lines == 12


def _bad(text: str) -> str:
    with pytest.raises(StructureError) as info:
        structure_from_yaml(text, source="s.yaml")
    return str(info.value)


BASE = load_builtin("crafter-v0").to_yaml()


def test_invalid_field_is_named_with_its_line() -> None:
    text = BASE.replace("max_lines: 12", "max_lines: -3", 1)
    line = text.splitlines().index("  max_lines: -3") + 1
    msg = _bad(text)
    assert f"s.yaml:{line}: files.0.max_lines" in msg


def test_unknown_verb_helper_and_placeholder_are_refused() -> None:
    assert "operations.enabled" in _bad(BASE.replace("- view\n", "- teleport\n", 1))
    assert "unknown helper" in _bad(BASE.replace("name: stuck_detector", "name: oracle"))
    assert "$nope" in _bad(BASE.replace("You play $game.", "You play $nope."))
    assert "no parameter" in _bad(BASE.replace("window: 6", "windw: 6"))


def test_bad_phase_order_and_unknown_field() -> None:
    text = BASE.replace("- kind: LOG", "- kind: PLAN", 1)
    assert "phases" in _bad(text)
    assert "Extra inputs" in _bad(BASE + "colour: blue\n")


def test_not_yaml_and_not_a_mapping() -> None:
    assert "not valid YAML" in _bad("name: [unclosed\n")
    assert "mapping" in _bad("- just a list\n")


def test_resolve_file_and_missing(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(BASE.replace("name: crafter-v0", "name: mine"))
    assert resolve_structure(str(path)).name == "mine"
    with pytest.raises(StructureError, match="not found"):
        resolve_structure(str(tmp_path / "nope.yaml"))
    with pytest.raises(StructureError, match="unknown structure"):
        resolve_structure("no-such-structure")


def test_read_verbs() -> None:
    s = load_builtin("minihack-v0")
    assert s.read_verbs() == {Verb.VIEW, Verb.TAIL, Verb.SEARCH, Verb.COUNT}
