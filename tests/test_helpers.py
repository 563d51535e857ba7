"""The helper catalogue on real game states: Crafter, MiniHack and NetHack envs, seeded.

Each helper is driven the way the agent drives it (one call per step, after the game's step) over
actions played in the real game; expectations come from the game itself (did the move change the
position, is the stairs cell where the note says), not from hand-made numbers.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from automem.cli import app
from automem.games import Game, make_game
from automem.helpers import (
    HelperContext,
    HelperError,
    HelperMemory,
    catalogue,
    check_helper,
    helper_names,
    make_helpers,
    parse_params,
    refresh,
)
from automem.helpers.mapping import open_moves, reach
from automem.memory.folder import FileLimits, MemoryFolder, MemoryLimits
from automem.memory.structure import StructureError, load_builtin, structure_from_yaml


@pytest.fixture(scope="module")
def crafter() -> Iterator[Game]:
    g = make_game("crafter")
    yield g
    g.close()


@pytest.fixture(scope="module")
def minihack() -> Iterator[Game]:
    g = make_game("minihack", "Room-5x5")
    yield g
    g.close()


@pytest.fixture(scope="module")
def nethack() -> Iterator[Game]:
    g = make_game("nethack")
    yield g
    g.close()


def drive(game: Game, helpers: list, actions: list[str], memory: HelperMemory) -> list[list[str]]:
    """Each step's notes, as Agent.notes computes them: before step i, knowing step i-1's action."""
    out: list[list[str]] = []
    last_action, last_reward, observation = None, 0.0, game.observation()
    for index in range(len(actions) + 1):
        ctx = HelperContext(game, observation, index, last_action, last_reward, memory)
        out.append([note for h in helpers for note in h.step(ctx)])
        if index == len(actions):
            break
        result = game.step(actions[index])
        observation, last_action, last_reward = result.observation, actions[index], result.reward
    return out


def _memory(tmp_path: Path, **files: FileLimits) -> HelperMemory:
    return HelperMemory(MemoryFolder(tmp_path / "mem", MemoryLimits(files=files)))


def _one(name: str, game: Game, **params: object):
    (helper,) = make_helpers([(name, params)], game.name)
    return helper


# -- the typed state -----------------------------------------------------------------------
def test_crafter_state_is_the_local_view(crafter: Game) -> None:
    crafter.reset(42)
    s = crafter.state()
    assert s.game == "crafter" and s.position == (32, 32) and s.step == 0
    assert len(s.local_map) == 7 and {len(r) for r in s.local_map} == {9} and s.cell(0, 0) == "@"
    assert s.vitals == {"health": 9, "food": 9, "drink": 9, "energy": 9} and s.inventory == {}
    assert s.walkable.shape == (7, 9) and not s.diagonal and s.facing is not None
    view = crafter.view()  # [x, y] semantic ids of the same 9x7 cells
    for t in s.things:
        assert s.cell(t.dx, t.dy) == t.glyph and view[4 + t.dx, 3 + t.dy] > 0
    # the observation text names the nearest of each kind: the state's first thing of that kind
    nearest = s.things[0]
    assert f"- {nearest.kind} {nearest.distance(False)} step" in crafter.observation()


def test_nle_state_is_the_level_map(nethack: Game, minihack: Game) -> None:
    nethack.reset(42)
    s = nethack.state()
    row, col = nethack._screen.cursor  # the terminal's cursor sits on the player
    assert s.position == (col, row - 1) and s.cell(0, 0) == "@" and s.depth == 1
    assert len(s.local_map) == 21 and s.walkable.shape == (21, 79) and s.diagonal
    assert s.vitals["hp"] == s.vitals_max["hp"] > 0 and s.moves["northwest"] == (-1, -1)
    assert any(t.kind.startswith("pet ") and t.distance(True) == 1 for t in s.things)
    assert sum(s.inventory.values()) >= len(nethack.inventory())
    minihack.reset(42)
    m = minihack.state()
    (stairs,) = [t for t in m.things if t.kind == "stairs down"]
    assert m.cell(stairs.dx, stairs.dy) == ">" and m.can_walk(stairs.dx, stairs.dy)


def test_a_kept_state_is_a_copy(nethack: Game) -> None:
    """NLE reuses its arrays: a state kept across a step must not change under the helper."""
    nethack.reset(42)
    before = nethack.state()
    walkable, rows = before.walkable.copy(), before.local_map
    nethack.step("north")
    after = nethack.state()
    assert after is not before and after.position != before.position
    assert np.array_equal(before.walkable, walkable) and before.local_map == rows


# -- each helper on real play ----------------------------------------------------------------
def test_unchanged_observation_after_walking_into_rock_twice(minihack: Game, tmp_path: Path) -> None:
    minihack.reset(42)  # the player starts in the room's north-west corner: north is solid stone
    notes = drive(minihack, [_one("unchanged_observation", minihack)], ["north", "north"], _memory(tmp_path))
    assert notes[1] == []  # the first bump prints "It's solid stone."
    assert notes[2] and "north" in notes[2][0] and "changed nothing" in notes[2][0]


def test_stuck_detector_needs_a_full_window(minihack: Game, tmp_path: Path) -> None:
    minihack.reset(42)
    notes = drive(minihack, [_one("stuck_detector", minihack, window=3)], ["north"] * 4, _memory(tmp_path))
    assert [bool(n) for n in notes] == [False, False, True, True, True]
    assert "stuck" in notes[2][0] and "north" in notes[2][0]


def test_auto_log_records_each_action_and_its_outcome(crafter: Game, tmp_path: Path) -> None:
    crafter.reset(42)
    memory = _memory(tmp_path)
    helper = _one("auto_log", crafter, max_lines=3)
    drive(crafter, [helper], ["move_left", "noop", "move_left", "move_up"], memory)
    lines = memory.read("log.md").splitlines()
    assert len(lines) == 3  # capped: the oldest line went
    assert lines[0].startswith("step 1: noop -> did not move")
    assert lines[-1].startswith("step 3: move_up -> moved 1 north")
    writes = memory.take()
    assert [name for name, _ in writes] == ["auto_log"] * 4 and all(r.ok for _, r in writes)


def test_auto_prune_cuts_files_past_their_size(crafter: Game, tmp_path: Path) -> None:
    crafter.reset(42)
    memory = _memory(tmp_path, **{"rules.md": FileLimits(max_lines=200, max_chars=4000, read_only=True)})
    long = "\n".join(f"note {i}" for i in range(50))
    memory.folder.seed({"notes.md": long, "rules.md": long})
    notes = drive(crafter, [_one("auto_prune", crafter, max_lines=40, keep=10)], ["noop"], memory)
    assert notes[0] == ["notes.md had 50 lines; its oldest were cut, 10 kept."] and notes[1] == []
    assert memory.read("notes.md").splitlines() == [f"note {i}" for i in range(40, 50)]
    assert memory.read("rules.md").splitlines() == long.splitlines()  # read-only: the structure's, never cut


def test_map_keeper_keeps_places_by_coordinates(crafter: Game, tmp_path: Path) -> None:
    crafter.reset(42)
    start = crafter.state()
    trees = {f"{start.position[0] + t.dx},{start.position[1] + t.dy}: tree" for t in start.things if t.kind == "tree"}
    memory = _memory(tmp_path)
    drive(crafter, [_one("map_keeper", crafter, max_lines=200)], ["move_down"] * 8, memory)
    lines = memory.read("map.md").splitlines()
    now = crafter.state()
    assert lines[0] == f"you: {now.position[0]},{now.position[1]}"
    assert trees and trees <= set(lines)  # out of view now, still on the map at their world coordinates
    for t in now.things:  # and what is in view is there too, nearest first
        if t.kind in ("tree", "stone", "water", "coal", "iron"):
            assert f"{now.position[0] + t.dx},{now.position[1] + t.dy}: {t.kind}" in lines


def test_position_tracker_follows_the_game(crafter: Game, tmp_path: Path) -> None:
    crafter.reset(42)
    memory = _memory(tmp_path)
    helper = _one("position_tracker", crafter, path="cells.md")
    notes = drive(crafter, [helper], ["move_left", "move_right", "noop"], memory)
    x, y = crafter.state().position
    assert f"x={x} y={y}" in notes[-1][0] and "visits to this cell: 3" in notes[-1][0]
    assert memory.read("cells.md").splitlines()[0] == f"{x},{y}: 3 visits, last step 3"


def test_oscillation_detector_warns_about_back_and_forth(crafter: Game, tmp_path: Path) -> None:
    crafter.reset(42)
    helper = _one("oscillation_detector", crafter, window=6)
    notes = drive(crafter, [helper], ["move_left", "move_right"] * 4, _memory(tmp_path))
    warned = [i for i, n in enumerate(notes) if n]
    assert warned and "oscillating" in notes[warned[0]][0]
    assert "move_up" in notes[warned[0]][0] or "move_down" in notes[warned[0]][0]  # a direction not tried


@pytest.mark.parametrize(("name", "task", "seed"), [("crafter", None, 42), ("minihack", "Room-5x5", 42),
                                                     ("nethack", None, 42)])  # fmt: skip
def test_passable_directions_agree_with_the_game(name: str, task: str | None, seed: int, tmp_path: Path) -> None:
    """Every move the helper calls open changes the position; every blocked one does not."""
    game = make_game(name, task)
    try:
        game.reset(seed)
        state = game.state()
        open_, blocked = open_moves(state)
        note = drive(game, [_one("passable_directions", game)], [], _memory(tmp_path))[0][0]
        assert note.startswith("Open moves: ")
        for label in open_ + blocked:
            move = label.split(" (")[0]
            game.reset(seed)
            game.step(move)
            moved = game.state().position != state.position
            assert moved == (label in open_), (label, note)
        assert open_
    finally:
        game.close()


def test_nearest_targets_leads_to_the_stairs(minihack: Game, tmp_path: Path) -> None:
    """Following the note's first move each step ends the task on the stairs (success)."""
    minihack.reset(42)
    helper = _one("nearest_targets", minihack, targets="stairs down")
    memory = _memory(tmp_path)
    for index in range(12):
        (note,) = helper.step(HelperContext(minihack, minihack.observation(), index, None, 0.0, memory))
        minihack.step(re.search(r"first (\w+)", note).group(1))
        if minihack.done:
            break
    assert minihack.ended_reason == "success" and index == 3  # 4 diagonal moves from the corner


def test_nearest_targets_remembers_what_left_the_view(crafter: Game, tmp_path: Path) -> None:
    crafter.reset(42)
    helper = _one("nearest_targets", crafter, targets="tree")
    notes = drive(crafter, [helper], ["move_down"] * 6, _memory(tmp_path))
    assert "tree:" in notes[0][0] and re.search(r"\d+ moves?, first move_", notes[0][0])
    gone = [n for n in notes if n and "seen earlier, out of view" in n[0]]
    in_view = any(t.kind == "tree" for t in crafter.state().things)
    assert in_view or gone


def test_nearest_targets_finds_unexplored_ground(nethack: Game, tmp_path: Path) -> None:
    nethack.reset(42)
    state = nethack.state()
    (note,) = drive(nethack, [_one("nearest_targets", nethack, targets="unexplored")], [], _memory(tmp_path))[0]
    m = re.search(r"unexplored: ([^()]+) \((\d+) moves?, first (\w+)\)", note)
    assert m, note
    assert state.moves[m.group(3)] in [first for _, first in reach(state).values()]


def test_vitals_warning_on_hunger_and_threats(crafter: Game, tmp_path: Path) -> None:
    crafter.reset(42)
    helper = _one("vitals_warning", crafter, low=8)
    notes = drive(crafter, [helper], ["noop"] * 40, _memory(tmp_path))
    first = next(i for i, n in enumerate(notes) if n)
    assert crafter.state().vitals["food"] <= 8 and notes[first][0].startswith("Low ")
    game = make_game("minihack", "Room-Monster-5x5")
    try:
        game.reset(42)  # a newt next to the player
        notes = drive(game, [_one("vitals_warning", game, threat_distance=1)], [], _memory(tmp_path))
        assert notes[0] == ["Threat near: newt 1 north, 1 east."]
    finally:
        game.close()
    nethack = make_game("nethack")
    try:
        nethack.reset(42)  # the pet dog next to the player is no threat, and HP is full
        assert drive(nethack, [_one("vitals_warning", nethack)], [], _memory(tmp_path)) == [[]]
    finally:
        nethack.close()


def _collect_wood(game: Game) -> None:
    """Walk to the nearest tree by the helpers' own path finding, face it and hit it until wood comes."""
    for _ in range(40):
        state = game.state()
        if state.inventory.get("wood"):
            return
        tree = next(t for t in state.things if t.kind == "tree")
        if tree.distance(False) == 1:
            facing = (tree.dx, tree.dy)
            game.step("do" if state.facing == facing else next(n for n, o in state.moves.items() if o == facing))
            continue
        col, row = state.origin[0] + tree.dx, state.origin[1] + tree.dy
        paths = reach(state)
        spot = min((paths[c][0], c) for c in [(col + a, row + b) for a, b in state.moves.values()] if c in paths)[1]
        game.step(next(n for n, o in state.moves.items() if o == paths[spot][1]))
    pytest.fail("no wood after 40 steps")


def test_achievement_checklist_follows_the_inventory(crafter: Game, tmp_path: Path) -> None:
    crafter.reset(42)
    memory = _memory(tmp_path)
    helper = _one("achievement_checklist", crafter, path="checklist.md", max_next=2)
    (note,) = drive(crafter, [helper], [], memory)[0]
    assert note.startswith("Achievements 0/22. Next: collect_wood: face tree and do;")
    _collect_wood(crafter)
    (note,) = drive(crafter, [helper], [], memory)[0]
    assert note.startswith("Achievements 1/22. Next: ") and "collect_wood" not in note.split("Next:")[1]
    lines = memory.read("checklist.md").splitlines()
    assert "[ ] place_table: place_table facing grass/sand/path (missing 1 wood)" in lines  # a table takes 2
    assert lines[0] == "[x] collect_wood" and len(lines) == 22 and sum(x.startswith("[ ]") for x in lines) == 21


# -- the registry, validation, entry points, CLI -------------------------------------------------
def test_the_catalogue_lists_every_helper_with_typed_parameters() -> None:
    names = helper_names()
    assert len(names) >= 10 and {"unchanged_observation", "stuck_detector", "auto_log", "auto_prune"} <= set(names)
    for info in catalogue():
        assert info.description and all(p.type in {"int", "float", "str", "bool"} for p in info.params)
        assert parse_params(info.name, {}) is not None  # every parameter has a default
    assert "achievement_checklist" not in {i.name for i in catalogue("nethack")}
    assert "achievement_checklist" in {i.name for i in catalogue("crafter")}


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("oracle", {}, "unknown helper 'oracle'; known: achievement_checklist"),
        ("stuck_detector", {"size": 3}, "helper stuck_detector has no parameter size; parameters: window (int"),
        ("stuck_detector", {"window": 1}, "parameter window: Input should be greater than or equal to 2 (got 1)"),
        ("auto_log", {"path": "../x"}, "parameter path: String should match pattern"),
        ("auto_prune", {"max_lines": 10, "keep": 10}, "keep (10) must be below max_lines (10)"),
        ("vitals_warning", {"low": "often"}, "parameter low: Input should be a valid integer"),
    ],
)
def test_bad_helpers_are_refused_with_the_reason(name: str, params: dict, message: str) -> None:
    with pytest.raises(HelperError, match=re.escape(message)):
        check_helper(name, params)


BASE = load_builtin("crafter-v0").to_yaml()


def test_structures_validate_helpers_against_the_catalogue() -> None:
    ok = BASE.replace(
        "- name: stuck_detector\n", "- name: achievement_checklist\n  params: {max_next: 2}\n- name: stuck_detector\n"
    )
    assert structure_from_yaml(ok).helper("achievement_checklist").params == {"max_next": 2}
    with pytest.raises(StructureError, match=r"helpers\.1: helper stuck_detector has no parameter depth"):
        structure_from_yaml(BASE.replace("    window: 6\n", "    window: 6\n    depth: 2\n"))
    other = BASE.replace("game: crafter", "game: nethack").replace(
        "- name: stuck_detector\n", "- name: achievement_checklist\n- name: stuck_detector\n"
    )
    with pytest.raises(StructureError, match="helper achievement_checklist does not support nethack"):
        structure_from_yaml(other)
    # a structure for any game may list a Crafter-only helper; other games leave it out
    anywhere = load_builtin("none").derive(author="test", helpers=[{"name": "achievement_checklist"}])
    assert make_helpers([(h.name, h.params) for h in anywhere.helpers], "nethack") == []
    # parameters are stored as written, defaults are not filled in: a built-in's id changes only
    # when its file does (a74f294ccd05 before its phases had reminders again, issue 16's fourth session)
    assert load_builtin("crafter-v0").id == "4131d6291a9e"


def test_the_docs_list_the_catalogue_and_their_example_is_valid() -> None:
    docs = Path(__file__).parent.parent / "docs"
    text = (docs / "helpers.md").read_text()
    text = text[text.index("## The catalogue") : text.index("## The typed state")]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", text, re.M)
    assert sorted(name for name, _ in rows) == helper_names()
    for name, games in rows:
        info = next(i for i in catalogue() if i.name == name)
        assert games.strip() == (", ".join(info.games) or "any")
    example = structure_from_yaml((docs / "examples" / "crafter-helpers.yaml").read_text())
    assert {h.name for h in example.helpers} >= {"auto_log", "achievement_checklist", "nearest_targets"}


def _plugin(tmp_path: Path) -> Path:
    """A real installed distribution (a dist-info on sys.path) declaring an automem.helpers entry point."""
    site = tmp_path / "site"
    (site / "extra_helpers-0.1.dist-info").mkdir(parents=True)
    (site / "extra_helpers-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: extra-helpers\nVersion: 0.1\n"
    )
    (site / "extra_helpers-0.1.dist-info" / "entry_points.txt").write_text(
        "[automem.helpers]\nturn_counter = extra_helpers:TurnCounter\n"
    )
    (site / "extra_helpers.py").write_text(
        "from pydantic import Field\n"
        "from automem.helpers import Helper, HelperParams\n\n"
        "class Params(HelperParams):\n    every: int = Field(default=5, ge=1)\n\n"
        "class TurnCounter(Helper):\n"
        "    name = 'turn_counter'\n    description = 'the step number every few steps'\n    Params = Params\n\n"
        "    def step(self, ctx):\n"
        "        return [f'step {ctx.step}'] if ctx.step % self.params.every == 0 else []\n"
    )
    return site


def test_a_package_adds_a_helper_through_the_entry_point_group(tmp_path: Path, crafter: Game) -> None:
    site = _plugin(tmp_path)
    sys.path.insert(0, str(site))
    try:
        refresh()
        assert "turn_counter" in helper_names()
        check_helper("turn_counter", {"every": 2})
        with pytest.raises(HelperError, match="no parameter often"):
            check_helper("turn_counter", {"often": 2})
        crafter.reset(42)
        (helper,) = make_helpers([("turn_counter", {"every": 2})], "crafter")
        assert drive(crafter, [helper], ["noop"] * 2, _memory(tmp_path)) == [["step 0"], [], ["step 2"]]
        structure_from_yaml(BASE.replace("- name: stuck_detector\n", "- name: turn_counter\n- name: stuck_detector\n"))
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("extra_helpers", None)
        refresh()
    assert "turn_counter" not in helper_names()
    out = subprocess.run(
        [sys.executable, "-m", "automem.cli", "helpers", "--json"],
        capture_output=True, text=True, check=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    ).stdout  # fmt: skip
    assert "turn_counter" in {h["name"] for h in json.loads(out)}


def test_cli_lists_helpers() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["helpers", "--json"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.output)
    assert len(items) >= 8
    log = next(i for i in items if i["name"] == "auto_log")
    assert log["games"] == ["any"] and "log.md" in log["writes"]
    assert {"name": "max_lines", "type": "int", "default": 30}.items() <= log["params"][1].items()
    nethack = json.loads(runner.invoke(app, ["helpers", "nethack", "--json"]).output)
    assert "achievement_checklist" not in {i["name"] for i in nethack}
    table = runner.invoke(app, ["helpers", "crafter"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "achievement_checklist" in table.output and "[x] name" in table.output
    bad = runner.invoke(app, ["helpers", "chess"])
    assert bad.exit_code == 2 and "unknown game 'chess'" in bad.output


# -- the critics ------------------------------------------------------------------------------
def test_the_llm_critic_is_shown_the_catalogue_for_its_game() -> None:
    from automem.optimize.critics import critic_messages

    crafter = critic_messages(load_builtin("crafter-v0"), "digest", whole=False, tried=[])[0]["content"]
    assert all(f"- {name} (" in crafter for name in helper_names())
    assert "window: int = 6" in crafter and "writes `path` (default log.md)" in crafter
    nethack = critic_messages(load_builtin("nethack-v0"), "digest", whole=False, tried=[])[0]["content"]
    assert "achievement_checklist" not in nethack and "- passable_directions (" in nethack


@pytest.mark.parametrize(
    ("signals", "change"),
    [
        ({"oscillation_rate": 0.4, "steps": 50}, "helpers: + oscillation_detector"),
        ({"starvation_deaths": 2, "steps": 50}, "helpers: + vitals_warning"),
        ({"lookups": 10, "empty_lookup_rate": 0.7, "steps": 50}, "helpers: + auto_log(path=log.md)"),
        ({"longest_zero_reward_streak": 40, "steps": 50}, "helpers: + achievement_checklist"),
    ],
)
def test_heuristic_switches_helpers_on_from_signals(signals: dict, change: str) -> None:
    from automem.optimize.helper_mutations import switch_on_helpers
    from automem.optimize.heuristic import Signals

    s = load_builtin("crafter-v0")
    (m,) = [m for m in switch_on_helpers(s, Signals(**signals)) if change in m.changes(s)]
    assert m.structure.parent == s.id and m.structure.author == "heuristic"
    # applied again, the same signal tunes the helper instead of adding it twice (or proposes nothing)
    again = switch_on_helpers(m.structure, Signals(**signals))
    assert all(change not in x.changes(m.structure) for x in again)


def test_heuristic_tunes_helpers_already_on_and_respects_the_game() -> None:
    from automem.optimize.digest import FileStats
    from automem.optimize.helper_mutations import switch_on_helpers
    from automem.optimize.heuristic import Signals

    s = load_builtin("nethack-v0").derive(author="test", helpers=[{"name": "vitals_warning"}])
    changes = [c for m in switch_on_helpers(s, Signals(steps=50, starvation_deaths=1)) for c in m.changes(s)]
    assert changes == ["helpers.vitals_warning.hp_fraction: (default) -> 0.7"]
    streak = [c for m in switch_on_helpers(s, Signals(steps=50, longest_zero_reward_streak=40)) for c in m.changes(s)]
    assert streak == ["helpers: + nearest_targets"]  # NetHack has no achievement checklist
    crafter = load_builtin("crafter-v0")
    growing = Signals(steps=50, files={"notes.md": FileStats("notes.md", growth_chars_per_step=20.0, final_lines=19)})
    spec = next(f for f in crafter.files if not f.read_only and "key" not in f.format.lower() and f.max_lines >= 4)
    growing.files = {spec.path: FileStats(spec.path, growth_chars_per_step=20.0, final_lines=spec.max_lines)}
    (prune,) = switch_on_helpers(crafter, growing)
    assert prune.structure.helper("auto_prune").params == {
        "path": spec.path, "max_lines": spec.max_lines - 1, "keep": spec.max_lines // 2,
    }  # fmt: skip


def test_starvation_is_read_from_the_death_cause() -> None:
    from types import SimpleNamespace

    from automem.optimize.signals import signals_from_digest
    from automem.runs.memory_metrics import MemoryMetrics

    def episode(cause: str) -> SimpleNamespace:
        return SimpleNamespace(steps=10, invalid_outputs=0, unchanged_observations=0, longest_zero_reward_streak=0,
                               log_budget_exhausted=0, died=True, death_cause=cause)  # fmt: skip

    digest = SimpleNamespace(
        episodes=[episode("died; last seen at step 9: health: 0/9, food: 0/9"), episode("died; last seen: HP:0(12)")],
        files={},
        memory=MemoryMetrics(unrewarded_steps=10, oscillating=3, lookups=4, empty_lookups=2),
    )
    sig = signals_from_digest(digest)
    assert sig.starvation_deaths == 1 and sig.oscillation_rate == 0.3 and sig.empty_lookup_rate == 0.5


# -- a structure with the helpers plays every game with the bundled model -------------------------
def _with_helpers(game: str):
    base = load_builtin(f"{game}-v0")
    files = [*(f.model_dump(mode="json") for f in base.files)]
    # the log a helper keeps is declared (pinned, read-only for the model) like any memory file
    files.append({"path": "log.md", "purpose": "actions and outcomes (auto_log)", "pinned": True, "read_only": True,
                  "max_lines": 5, "max_chars": 1000})  # fmt: skip
    helpers = [{"name": i.name, "params": {}} for i in catalogue(game)]
    for h in helpers:
        if h["name"] == "auto_log":
            h["params"] = {"path": "log.md", "max_lines": 5}
    return base.derive(author="test", files=files, helpers=helpers)


@pytest.mark.model
@pytest.mark.parametrize(("game", "task"), [("crafter", None), ("minihack", "Room-5x5"), ("nethack", None)])
def test_a_structure_with_helpers_plays_and_records_helper_ops(store, engine, game: str, task: str | None) -> None:
    from automem.optimize.digest import build_digest
    from automem.runs import RunConfig, execute_run
    from automem.runs.memory_metrics import episode_metrics
    from automem.runs.replay import EpisodeReplay
    from automem.tui.widgets.actions_pane import _op_text, replay_lines

    structure = _with_helpers(game)
    config = RunConfig(game=game, task=task, seeds=[42], structure=structure, engine_spec="llamacpp", max_steps=2)
    run_id, (summary,) = execute_run(config, store, engine)
    assert summary.status == "finished" and summary.steps == 2
    ops = store.memory_ops_of(summary.episode_id, source="helper")
    # step 1's log line is the outcome of step 0's action, written through the trusted path
    assert [(o["step"], o["phase"], o["verb"], o["path"], o["ok"]) for o in ops if o["path"] == "log.md"] == [
        (1, "HELPER", "write", "log.md", 1)
    ]
    assert all(o["llm_call_id"] is None and json.loads(o["args"])["helper"] for o in ops)
    notes = [s["helper_notes"] for s in store.steps(summary.episode_id)]
    assert all("Open moves:" in n for n in notes)  # passable_directions ran on every step
    # counted apart: the model's look-ups and writes are its own, the helpers' are helper_writes
    metrics = episode_metrics(store, summary.episode_id)
    assert metrics.helper_writes == len(ops)
    digest = build_digest(store, run_id)
    log = digest.files["log.md"]
    assert log.helper_writes == 1 and log.writes == 0 and log.redundant_writes == 0
    assert digest.episodes[0].helper_ops == len(ops)
    # the replay rebuilds the helper's file and shows its operation in the helper's colour
    replay = EpisodeReplay(store, summary.episode_id)
    assert replay.memory(1)["log.md"].startswith("step 0: ")
    (line,) = [x for x in replay_lines(replay.step(1)) if getattr(x, "path", None) == "log.md"]
    text = _op_text(line)
    assert text.plain.startswith("    helper: ok: wrote log.md") and any("blue" in str(s.style) for s in text.spans)
