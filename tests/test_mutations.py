"""Loop 1 without a model: structural diffs and the heuristic critic's mutation catalogue."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automem.memory.structure import Structure, load_builtin, structure_from_yaml
from automem.optimize.changes import structural_changes, wording_changes
from automem.optimize.digest import FileStats
from automem.optimize.heuristic import (
    CRITIC_LABEL,
    KEYED_FORMAT,
    MUTATIONS,
    Mutation,
    Signals,
    propose,
)

WITH_FILES = ["crafter-v0", "nethack-v0", "minihack-v0"]
ALL = [*WITH_FILES, "none"]


def edit(s: Structure, **changes: Any) -> Structure:
    """A person's edit, for the diff tests."""
    return s.derive(author="person", **changes)


def files_with(s: Structure, path: str, **updates: Any) -> list[dict[str, Any]]:
    return [{**f.model_dump(mode="json"), **updates} if f.path == path else f.model_dump(mode="json") for f in s.files]


def phases_with(s: Structure, kind: str, **updates: Any) -> list[dict[str, Any]]:
    return [{**p.model_dump(mode="json"), **updates} if p.kind == kind else p.model_dump(mode="json") for p in s.phases]


def ops_with(s: Structure, **updates: Any) -> dict[str, Any]:
    return {**s.operations.model_dump(mode="json"), **updates}


def spec(s: Structure, path: str):  # type: ignore[no-untyped-def]
    return next(f for f in s.files if f.path == path)


def signals(steps: int = 200, **files: FileStats) -> Signals:
    return Signals(steps=steps, files={f.path: f for f in files.values()})


def check(parent: Structure, m: Mutation | None, name: str, *in_reason: str) -> Structure:
    """The common contract of every mutation; returns the child."""
    assert m is not None, f"{name} did not apply"
    assert m.name == name
    child = m.structure
    assert structure_from_yaml(child.to_yaml()).id == child.id
    assert child.parent == parent.id and child.author == "heuristic"
    assert child.id != parent.id
    assert structural_changes(parent, child)
    for text in in_reason:
        assert text in m.reason, (text, m.reason)
    return child


# -- structural_changes / wording_changes ------------------------------------------------------
def test_identical_structures_have_no_changes() -> None:
    s = load_builtin("crafter-v0")
    assert structural_changes(s, s) == [] and wording_changes(s, s) == []
    same = s.model_copy(update={"author": "person", "parent": "abc"})
    assert structural_changes(s, same) == [] and wording_changes(s, same) == []


@pytest.mark.parametrize("name", ALL)
def test_wording_only_edits_are_not_structural(name: str) -> None:
    s = load_builtin(name)
    changes: dict[str, Any] = {
        "name": "renamed",
        "description": "another description",
        "prompts": {"system": s.prompts.system + "\nBe brief."},
        "phases": [{**p.model_dump(mode="json"), "instructions": p.instructions + " Think."} for p in s.phases],
    }
    if s.files:
        first = s.files[-1].path
        changes["files"] = files_with(s, first, purpose="something else", format="other format", seed="hello")
    child = edit(s, **changes)
    assert child.id != s.id
    assert structural_changes(s, child) == []
    wording = wording_changes(s, child)
    assert {"name", "description", "prompts.system"} <= set(wording)
    assert all(f"phases.{p.kind}.instructions" in wording for p in s.phases)
    if s.files:
        assert {f"files.{first}.purpose", f"files.{first}.format", f"files.{first}.seed"} <= set(wording)


def test_reordering_files_verbs_or_helpers_is_wording() -> None:
    s = load_builtin("crafter-v0")
    child = edit(
        s,
        files=[f.model_dump(mode="json") for f in reversed(s.files)],
        operations=ops_with(s, enabled=list(reversed([str(v) for v in s.operations.enabled]))),
        helpers=[h.model_dump(mode="json") for h in reversed(s.helpers)],
    )
    assert structural_changes(s, child) == []
    assert set(wording_changes(s, child)) == {"files (order)", "operations.enabled (order)", "helpers (order)"}


NOTES = {"path": "notes.md", "purpose": "anything", "max_lines": 10, "max_chars": 500}
CRAFTER_EDITS: list[tuple[str, Any, str]] = [
    ("add file", lambda s: {"files": [*files_with(s, ""), NOTES]}, "files: + notes.md"),
    (
        "drop file",
        lambda s: {"files": [f for f in files_with(s, "") if f["path"] != "actions.md"]},
        "files: - actions.md",
    ),
    ("max_lines", lambda s: {"files": files_with(s, "map.md", max_lines=60)}, "files.map.md.max_lines: 30 -> 60"),
    ("max_chars", lambda s: {"files": files_with(s, "map.md", max_chars=900)}, "files.map.md.max_chars: 1500 -> 900"),
    (
        "overflow",
        lambda s: {"files": files_with(s, "map.md", overflow="drop_oldest")},
        "files.map.md.overflow: refuse -> drop_oldest",
    ),
    ("pinned", lambda s: {"files": files_with(s, "map.md", pinned=True)}, "files.map.md.pinned: false -> true"),
    (
        "read_only",
        lambda s: {"files": files_with(s, "map.md", read_only=True)},
        "files.map.md.read_only: false -> true",
    ),
    (
        "verb removed",
        lambda s: {"operations": ops_with(s, enabled=[str(v) for v in s.operations.enabled if str(v) != "insert"])},
        "operations.enabled: - insert",
    ),
    (
        "verb added",
        lambda s: {"operations": ops_with(s, enabled=[*map(str, s.operations.enabled), "create"])},
        "operations.enabled: + create",
    ),
    (
        "allow_new_files",
        lambda s: {"operations": ops_with(s, allow_new_files=True)},
        "operations.allow_new_files: false -> true",
    ),
    ("ops cap", lambda s: {"operations": ops_with(s, max_read_lines=10)}, "operations.max_read_lines: 20 -> 10"),
    ("LOG budget", lambda s: {"phases": phases_with(s, "LOG", budget=1)}, "phases.LOG.budget: 2 -> 1"),
    ("PLAN tokens", lambda s: {"phases": phases_with(s, "PLAN", max_tokens=96)}, "phases.PLAN.max_tokens: 48 -> 96"),
    (
        "phase kinds",
        lambda s: {"phases": [p for p in phases_with(s, "") if p["kind"] == "PLAN"]},
        "phases: LOG, PLAN -> PLAN",
    ),
    (
        "helper removed",
        lambda s: {"helpers": [{"name": "stuck_detector", "params": {"window": 6}}]},
        "helpers: - unchanged_observation",
    ),
    (
        "helper param",
        lambda s: {"helpers": [{"name": "unchanged_observation"}, {"name": "stuck_detector", "params": {"window": 8}}]},
        "helpers.stuck_detector.window: 6 -> 8",
    ),
    (
        "helper param added",
        lambda s: {
            "helpers": [
                {"name": "unchanged_observation"},
                {"name": "stuck_detector", "params": {"window": 6, "max_distinct": 3}},
            ]
        },
        "helpers.stuck_detector.max_distinct: (default) -> 3",
    ),
    ("scope", lambda s: {"context": {"history_steps": 4, "scope": "run"}}, "context.scope: episode -> run"),
    ("history", lambda s: {"context": {"history_steps": 8, "scope": "episode"}}, "context.history_steps: 4 -> 8"),
    ("fallback", lambda s: {"fallback_action": "do"}, "fallback_action: noop -> do"),
]


@pytest.mark.parametrize(("label", "make", "expected"), CRAFTER_EDITS, ids=[e[0] for e in CRAFTER_EDITS])
def test_each_structural_kind_is_detected(label: str, make: Any, expected: str) -> None:
    s = load_builtin("crafter-v0")
    child = edit(s, **make(s))
    assert structural_changes(s, child) == [expected]
    assert wording_changes(s, child) == []


def test_helper_added_shows_its_parameters() -> None:
    s = load_builtin("none")
    child = edit(
        s,
        helpers=[*[h.model_dump(mode="json") for h in s.helpers], {"name": "stuck_detector", "params": {"window": 6}}],
    )
    assert structural_changes(s, child) == ["helpers: + stuck_detector(window=6)"]


def test_structural_and_wording_together_are_split() -> None:
    s = load_builtin("minihack-v0")
    child = edit(
        s, files=files_with(s, "map.md", max_lines=40, purpose="places"), prompts={"system": "You play $game."}
    )
    assert structural_changes(s, child) == ["files.map.md.max_lines: 24 -> 40"]
    assert wording_changes(s, child) == ["prompts.system", "files.map.md.purpose"]


# -- the catalogue: each mutation where the signals call for it ------------------------------
def test_registry_names_the_catalogue() -> None:
    assert set(MUTATIONS) >= {
        "cap_lines",
        "keyed_upserts",
        "drop_unread",
        "enable_stuck_helper",
        "toggle_pinned",
        "turn_budgets",
        "history_steps",
        "carry_memory",
    }
    assert "heuristic" in CRITIC_LABEL


@pytest.mark.parametrize("name", ALL)
def test_nothing_applies_without_signals(name: str) -> None:
    s = load_builtin(name)
    for mutate in MUTATIONS.values():
        assert mutate(s, Signals()) is None
        assert mutate(s, Signals(steps=200)) is None
    assert propose(s, Signals(steps=200), k=5) == []


@pytest.mark.parametrize("name", WITH_FILES)
def test_cap_lines_gives_room_to_a_full_file_that_is_read(name: str) -> None:
    s = load_builtin(name)
    old = spec(s, "map.md").max_lines
    sig = signals(m=FileStats("map.md", writes=10, reads=12, final_lines=old - 1, refused_writes=3))
    child = check(s, MUTATIONS["cap_lines"](s, sig), "cap_lines", f"{old - 1}/{old} lines", "3 refused", "12 times")
    assert spec(child, "map.md").max_lines > old and spec(child, "map.md").max_chars > spec(s, "map.md").max_chars
    assert f"files.map.md.max_lines: {old} -> {spec(child, 'map.md').max_lines}" in structural_changes(s, child)


@pytest.mark.parametrize("name", WITH_FILES)
def test_cap_lines_makes_a_full_appended_file_roll(name: str) -> None:
    s = load_builtin(name)
    sig = signals(
        p=FileStats("progress.md", writes=6, appends=6, final_lines=spec(s, "progress.md").max_lines, refused_writes=2)
    )
    child = check(s, MUTATIONS["cap_lines"](s, sig), "cap_lines", "2 refused", "6 of 6 writes are appends")
    assert structural_changes(s, child) == ["files.progress.md.overflow: refuse -> drop_oldest"]


@pytest.mark.parametrize("name", WITH_FILES)
def test_cap_lines_tightens_a_growing_file_nobody_reads(name: str) -> None:
    s = load_builtin(name)
    sig = signals(a=FileStats("actions.md", writes=40, appends=40, growth_chars_per_step=30.0, final_lines=8))
    child = check(s, MUTATIONS["cap_lines"](s, sig), "cap_lines", "actions.md grew 30 chars/step", "0 reads")
    assert spec(child, "actions.md").max_lines < spec(s, "actions.md").max_lines
    assert spec(child, "actions.md").overflow == "drop_oldest"


def test_cap_lines_never_cuts_below_the_seed() -> None:
    s = load_builtin("nethack-v0")
    sig = signals(st=FileStats("strategy.md", writes=20, growth_chars_per_step=20.0, context_share=0.3))
    child = check(s, MUTATIONS["cap_lines"](s, sig), "cap_lines", "strategy.md grew 20 chars/step")
    new = spec(child, "strategy.md")
    assert new.max_lines >= spec(s, "strategy.md").seed.count("\n") + 1 and new.seed == spec(s, "strategy.md").seed
    # a file whose seed fills its cap cannot be tightened
    tight = edit(s, files=files_with(s, "strategy.md", max_lines=3))
    assert MUTATIONS["cap_lines"](tight, sig) is None


def test_cap_lines_leaves_read_only_files_alone() -> None:
    s = load_builtin("nethack-v0")
    sig = signals(r=FileStats("rules.md", reads=30, final_lines=20, refused_writes=4, growth_chars_per_step=50.0))
    assert MUTATIONS["cap_lines"](s, sig) is None


def _no_upsert(s: Structure) -> Structure:
    return edit(s, operations=ops_with(s, enabled=[str(v) for v in s.operations.enabled if str(v) != "upsert"]))


@pytest.mark.parametrize("name", WITH_FILES)
def test_keyed_upserts_enables_upsert_for_a_growing_map(name: str) -> None:
    s = _no_upsert(load_builtin(name))
    sig = signals(m=FileStats("map.md", writes=14, appends=12, reads=0, growth_chars_per_step=41.0))
    child = check(s, MUTATIONS["keyed_upserts"](s, sig), "keyed_upserts", "map.md grew 41 chars/step with 12 appends")
    assert "operations.enabled: + upsert" in structural_changes(s, child)
    assert spec(child, "map.md").format == spec(s, "map.md").format  # already keyed: its example is kept


def test_keyed_upserts_rewrites_a_free_text_format() -> None:
    base = load_builtin("crafter-v0")
    s = _no_upsert(edit(base, files=[*files_with(base, ""), NOTES]))
    sig = signals(n=FileStats("notes.md", writes=9, appends=9, growth_chars_per_step=12.0))
    child = check(s, MUTATIONS["keyed_upserts"](s, sig), "keyed_upserts", "notes.md grew 12 chars/step")
    assert spec(child, "notes.md").format == KEYED_FORMAT
    assert structural_changes(s, child) == ["operations.enabled: + upsert"]
    assert wording_changes(s, child) == ["files.notes.md.format"]


@pytest.mark.parametrize("name", WITH_FILES)
def test_keyed_upserts_tightens_the_map_when_upsert_is_unused(name: str) -> None:
    s = load_builtin(name)
    sig = signals(m=FileStats("map.md", writes=14, appends=12, reads=2, growth_chars_per_step=41.0))
    child = check(s, MUTATIONS["keyed_upserts"](s, sig), "keyed_upserts", "12 appends", "upsert is enabled")
    assert spec(child, "map.md").max_lines == spec(s, "map.md").max_lines // 2
    assert spec(child, "map.md").overflow == "refuse"


def test_keyed_upserts_estimates_appends_when_the_digest_has_no_count() -> None:
    s = _no_upsert(load_builtin("crafter-v0"))
    # 20 writes that grew the file by 4,000 chars are line-sized additions, not in-place edits
    sig = signals(m=FileStats("map.md", writes=20, growth_chars_per_step=20.0))
    child = check(s, MUTATIONS["keyed_upserts"](s, sig), "keyed_upserts", "~20 appends (of 20 writes)")
    assert "operations.enabled: + upsert" in structural_changes(s, child)
    edits = signals(m=FileStats("map.md", writes=20, growth_chars_per_step=0.5))  # edited in place
    assert MUTATIONS["keyed_upserts"](s, edits) is None


@pytest.mark.parametrize("name", WITH_FILES)
def test_keyed_upserts_skips_logs_and_files_mostly_upserted(name: str) -> None:
    s = load_builtin(name)
    log = signals(a=FileStats("actions.md", writes=30, appends=30, growth_chars_per_step=20.0))
    assert MUTATIONS["keyed_upserts"](s, log) is None
    keyed = signals(m=FileStats("map.md", writes=30, appends=5, growth_chars_per_step=20.0))
    assert MUTATIONS["keyed_upserts"](s, keyed) is None


@pytest.mark.parametrize("name", WITH_FILES)
def test_drop_unread_removes_a_file_never_read(name: str) -> None:
    s = load_builtin(name)
    sig = signals(a=FileStats("actions.md", writes=25, never_read=True))
    child = check(s, MUTATIONS["drop_unread"](s, sig), "drop_unread", "actions.md was never read", "25 writes")
    assert structural_changes(s, child) == ["files: - actions.md"]


@pytest.mark.parametrize("name", WITH_FILES)
def test_drop_unread_keeps_pinned_read_only_and_prompted_files(name: str) -> None:
    s = load_builtin(name)
    for path in ("progress.md", "map.md", "symbols.md", "rules.md"):  # pinned / named in PLAN / read-only
        assert MUTATIONS["drop_unread"](s, signals(f=FileStats(path, writes=5, never_read=True))) is None


def test_drop_unread_keeps_the_last_file() -> None:
    base = load_builtin("minihack-v0")
    s = edit(base, files=[f for f in files_with(base, "") if f["path"] == "actions.md"])
    assert MUTATIONS["drop_unread"](s, signals(a=FileStats("actions.md", writes=5, never_read=True))) is None


@pytest.mark.parametrize("name", ALL)
def test_enable_stuck_helper_adds_missing_helpers(name: str) -> None:
    s = edit(load_builtin(name), helpers=[])
    sig = Signals(steps=200, unchanged_rate=0.2)
    child = check(s, MUTATIONS["enable_stuck_helper"](s, sig), "enable_stuck_helper", "20% of steps")
    assert structural_changes(s, child) == ["helpers: + unchanged_observation"]
    sig = Signals(steps=200, longest_zero_reward_streak=80)
    child = check(s, MUTATIONS["enable_stuck_helper"](s, sig), "enable_stuck_helper", "streak was 80 steps")
    assert structural_changes(s, child) == ["helpers: + stuck_detector(window=6)"]


def test_enable_stuck_helper_on_the_baseline_and_when_present() -> None:
    none = load_builtin("none")  # has the unchanged warning, not the stuck detector
    sig = Signals(steps=200, unchanged_rate=0.3, longest_zero_reward_streak=60)
    child = check(none, MUTATIONS["enable_stuck_helper"](none, sig), "enable_stuck_helper", "60 steps")
    assert structural_changes(none, child) == ["helpers: + stuck_detector(window=6)"]
    for name in WITH_FILES:  # both on already: a long streak shortens the window
        s = load_builtin(name)
        child = check(s, MUTATIONS["enable_stuck_helper"](s, sig), "enable_stuck_helper", "60 steps")
        assert child.helper("stuck_detector").params["window"] < s.helper("stuck_detector").params["window"]
        assert MUTATIONS["enable_stuck_helper"](s, Signals(steps=200, unchanged_rate=0.5)) is None


@pytest.mark.parametrize("name", WITH_FILES)
def test_carry_memory_when_files_that_gain_content_are_read_back(name: str) -> None:
    s = load_builtin(name)
    sig = signals(m=FileStats("map.md", reads=60, writes=10, redundant_writes=2))
    child = check(s, MUTATIONS["carry_memory"](s, sig), "carry_memory", "map.md", "0.30 reads per step")
    assert structural_changes(s, child) == ["context.scope: episode -> run"]
    assert MUTATIONS["carry_memory"](child, sig) is None  # already carried
    only_redundant = signals(m=FileStats("map.md", reads=60, writes=4, redundant_writes=4))
    assert MUTATIONS["carry_memory"](s, only_redundant) is None  # nothing new was ever written
    assert MUTATIONS["carry_memory"](s, signals(m=FileStats("map.md", reads=2, writes=10))) is None


@pytest.mark.parametrize("name", WITH_FILES)
def test_toggle_pinned_pins_a_small_file_read_often(name: str) -> None:
    s = load_builtin(name)
    sig = signals(m=FileStats("map.md", reads=60, writes=10, final_lines=8))
    child = check(s, MUTATIONS["toggle_pinned"](s, sig), "toggle_pinned", "read 60 times in 200 steps", "8 lines")
    assert structural_changes(s, child) == ["files.map.md.pinned: false -> true"]
    big = signals(m=FileStats("map.md", reads=60, writes=10, final_lines=40))
    assert MUTATIONS["toggle_pinned"](s, big) is None


@pytest.mark.parametrize("name", WITH_FILES)
def test_toggle_pinned_unpins_a_costly_file_rarely_written(name: str) -> None:
    s = load_builtin(name)
    sig = signals(p=FileStats("progress.md", writes=1, context_share=0.4, pinned=True))
    child = check(s, MUTATIONS["toggle_pinned"](s, sig), "toggle_pinned", "40% of the context", "written once")
    assert structural_changes(s, child) == ["files.progress.md.pinned: true -> false"]
    busy = signals(p=FileStats("progress.md", writes=50, context_share=0.4, pinned=True))
    assert MUTATIONS["toggle_pinned"](s, busy) is None
    blind = edit(s, operations=ops_with(s, enabled=["append", "write"]))  # nothing could read it back
    assert MUTATIONS["toggle_pinned"](blind, sig) is None


@pytest.mark.parametrize("name", WITH_FILES)
def test_turn_budgets_raises_log_turns_when_they_run_out(name: str) -> None:
    s = load_builtin(name)
    budget = next(p for p in s.phases if p.kind == "LOG").budget
    sig = Signals(steps=200, log_budget_exhausted_rate=0.5)
    child = check(s, MUTATIONS["turn_budgets"](s, sig), "turn_budgets", "ran out of turns on 50%")
    assert structural_changes(s, child) == [f"phases.LOG.budget: {budget} -> {budget + 1}"]
    maxed = edit(s, phases=phases_with(s, "LOG", budget=16))
    assert MUTATIONS["turn_budgets"](maxed, sig) is None


@pytest.mark.parametrize("name", WITH_FILES)
def test_turn_budgets_cuts_turns_or_tokens_on_invalid_output(name: str) -> None:
    s = load_builtin(name)
    sig = Signals(steps=200, invalid_rate=0.3)
    child = check(s, MUTATIONS["turn_budgets"](s, sig), "turn_budgets", "30% of steps had invalid output")
    log_budget = next(p for p in s.phases if p.kind == "LOG").budget
    if log_budget > 1:
        assert structural_changes(s, child) == [f"phases.LOG.budget: {log_budget} -> {log_budget - 1}"]
    else:  # minihack's LOG has one turn already: shorter turns instead
        assert all(p.max_tokens < 48 for p in child.phases)


def test_turn_budgets_trims_log_turns_the_agent_does_not_use() -> None:
    s = load_builtin("nethack-v0")
    sig = signals(m=FileStats("map.md", writes=4, reads=10))
    child = check(s, MUTATIONS["turn_budgets"](s, sig), "turn_budgets", "only 0.02 writes/step")
    assert structural_changes(s, child) == ["phases.LOG.budget: 2 -> 1"]


def test_turn_budgets_does_not_apply_to_the_baseline() -> None:
    s = load_builtin("none")  # one ACT turn of 16 tokens: nothing to cut
    assert MUTATIONS["turn_budgets"](s, Signals(steps=200, invalid_rate=0.5, log_budget_exhausted_rate=0.9)) is None


@pytest.mark.parametrize("name", ALL)
def test_history_steps_follow_repeats_and_invalid_output(name: str) -> None:
    s = load_builtin(name)
    h = s.context.history_steps
    child = check(s, MUTATIONS["history_steps"](s, Signals(steps=200, unchanged_rate=0.4)), "history_steps", "40%")
    assert child.context.history_steps == h + 2
    child = check(s, MUTATIONS["history_steps"](s, Signals(steps=200, invalid_rate=0.4)), "history_steps", "invalid")
    assert child.context.history_steps < h
    long = edit(s, context={"history_steps": 12, "scope": "episode"})
    assert MUTATIONS["history_steps"](long, Signals(steps=200, unchanged_rate=0.4)) is None


# -- propose ----------------------------------------------------------------------------------
def busy_signals() -> Signals:
    return Signals(
        steps=200,
        invalid_rate=0.2,
        unchanged_rate=0.3,
        longest_zero_reward_streak=60,
        log_budget_exhausted_rate=0.1,
        files={
            "map.md": FileStats("map.md", writes=14, appends=12, growth_chars_per_step=41.0, final_lines=28),
            "actions.md": FileStats("actions.md", writes=30, appends=30, never_read=True, growth_chars_per_step=10.0),
            "progress.md": FileStats("progress.md", writes=1, context_share=0.3, pinned=True),
        },
    )


@pytest.mark.parametrize("name", ALL)
def test_propose_returns_distinct_structural_children(name: str) -> None:
    s = load_builtin(name)
    found = propose(s, busy_signals(), k=20)
    assert found
    ids = [m.structure.id for m in found]
    assert len(ids) == len(set(ids)) and s.id not in ids
    for m in found:
        check(s, m, m.name)


def test_propose_respects_k_and_prefers_different_kinds() -> None:
    s = load_builtin("crafter-v0")
    assert propose(s, busy_signals(), k=0) == []
    assert len(propose(s, busy_signals(), k=1)) == 1
    three = propose(s, busy_signals(), k=3)
    assert len(three) == 3 and len({m.name for m in three}) == 3
    assert three[0].name == "cap_lines"  # map.md growing 41 chars/step is the loudest signal


def test_propose_skips_excluded_ids() -> None:
    s = load_builtin("nethack-v0")
    first = propose(s, busy_signals(), k=3)
    tried = {m.structure.id for m in first}
    again = propose(s, busy_signals(), k=3, exclude=tried)
    assert again and not tried & {m.structure.id for m in again}
    everything = {m.structure.id for m in propose(s, busy_signals(), k=100)}
    assert propose(s, busy_signals(), k=5, exclude=everything) == []


def test_propose_is_deterministic_per_seed() -> None:
    s = load_builtin("minihack-v0")
    ids = [[m.structure.id for m in propose(s, busy_signals(), k=6, seed=seed)] for seed in (0, 1, 0)]
    assert ids[0] == ids[2]
    assert set(ids[0]) <= {m.structure.id for m in propose(s, busy_signals(), k=100, seed=1)}


# -- property: whatever the digest says, children are valid and structurally new ---------------
def _file_stats(path: str) -> st.SearchStrategy[FileStats]:
    counts = st.integers(min_value=0, max_value=300)
    return st.builds(
        FileStats,
        path=st.just(path),
        writes=counts,
        reads=counts,
        redundant_writes=counts,
        never_read=st.booleans(),
        pinned=st.booleans(),
        growth_chars_per_step=st.floats(min_value=0, max_value=200, allow_nan=False),
        context_share=st.floats(min_value=0, max_value=1, allow_nan=False),
        final_lines=st.integers(min_value=0, max_value=300),
        appends=counts,
        refused_writes=st.integers(min_value=0, max_value=50),
    )


@st.composite
def structure_and_signals(draw: st.DrawFn) -> tuple[Structure, Signals]:
    s = load_builtin(draw(st.sampled_from(ALL)))
    if draw(st.booleans()):  # sometimes without helpers or upsert, so every branch gets its turn
        s = edit(s, helpers=[])
    if draw(st.booleans()):
        s = _no_upsert(s)
    paths = draw(st.lists(st.sampled_from([*(f.path for f in s.files), "unknown.md"]), unique=True))
    rate = st.floats(min_value=0, max_value=1, allow_nan=False)
    sig = Signals(
        steps=draw(st.integers(min_value=0, max_value=2000)),
        invalid_rate=draw(rate),
        unchanged_rate=draw(rate),
        longest_zero_reward_streak=draw(st.integers(min_value=0, max_value=500)),
        log_budget_exhausted_rate=draw(rate),
        files={p: draw(_file_stats(p)) for p in paths},
    )
    return s, sig


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structure_and_signals(), st.integers(min_value=0, max_value=8), st.integers(min_value=0, max_value=3))
def test_property_every_proposal_is_valid_and_structural(case: tuple[Structure, Signals], k: int, seed: int) -> None:
    s, sig = case
    found = propose(s, sig, k=k, seed=seed)
    assert len(found) <= k
    assert len({m.structure.id for m in found}) == len(found)
    for m in found:
        assert m.name in MUTATIONS and m.reason
        child = structure_from_yaml(m.structure.to_yaml())
        assert child.id == m.structure.id and child.parent == s.id and child.author == "heuristic"
        assert structural_changes(s, m.structure)
    assert [m.structure.id for m in propose(s, sig, k=k, seed=seed)] == [m.structure.id for m in found]
    for mutate in MUTATIONS.values():
        m = mutate(s, sig)
        assert m is None or (m.structure.parent == s.id and structural_changes(s, m.structure))
