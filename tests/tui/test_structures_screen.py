"""The structure editor screen: list with lineage, live validation, save as a new version, use, diff, seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.events import ScreenResume

from automem.memory.structure import load_builtin, structure_from_yaml
from automem.store.db import Store, StructureNotFound
from automem.tui.app import AutomemApp
from automem.tui.context import TuiContext
from automem.tui.widgets.structure_catalog import editor_yaml, tree_rows
from automem.tui.widgets.structure_editor import StructureEditor, YamlArea
from automem.tui.widgets.structure_list import StructureTable
from automem.tui.widgets.structure_modals import DiffScreen, SeedScreen

SIZE = (160, 48)
CRAFTER = load_builtin("crafter-v0")


def _app(tmp_path: Path) -> tuple[AutomemApp, TuiContext]:
    ctx = TuiContext(store=Store(tmp_path / "a.db"), game="crafter")
    return AutomemApp(ctx, mode="structures"), ctx


def _scored_child(store: Store) -> str:
    """crafter-v0 stored, a critic's child of it, and two finished episodes (progression 10 and 30) of the child."""
    store.save_structure(CRAFTER)
    child = CRAFTER.derive(author="critic", description="critic's revision")
    sid = store.save_structure(child)
    run = store.create_run(
        name="r", game="crafter", task="default", structure_id=sid, engine="e", memory_engine=None, config={}
    )
    for seed, progression in ((0, 10.0), (1, 30.0), (2, 99.0)):
        ep = store.start_episode(
            run_id=run, game="crafter", task="default", seed=seed, structure_id=sid, engine="e", model="m",
            memory_dir="m", memory_seed={},
        )  # fmt: skip
        store.db["episodes"].update(ep, {"progression": progression})
        if seed < 2:  # the third is still running: not counted
            store.finish_episode(ep, status="finished")
    return sid


def _editor(app: AutomemApp) -> StructureEditor:
    return app.screen.query_one(StructureEditor)


def _status(app: AutomemApp) -> str:
    return str(app.screen.query_one("#structure-status").render())


def _set_line(area: YamlArea, old: str, new: str) -> None:
    """Replace the first occurrence of ``old`` in the editor, as an edit (posts Changed like typing)."""
    assert old in area.text
    area.text = area.text.replace(old, new, 1)


# -- store helpers -------------------------------------------------------------------------
def test_store_structure_helpers(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    sid = _scored_child(store)
    assert [r["id"] for r in store.structures()] == [CRAFTER.id, sid]
    assert store.load_structure(sid[:6]).parent == CRAFTER.id
    assert store.structure_scores() == {sid: (2, 20.0)}
    with pytest.raises(StructureNotFound, match="no stored structure"):
        store.load_structure("ffffffff")
    with pytest.raises(KeyError):
        store.load_structure("xyz")


def test_editor_yaml_round_trips_every_builtin() -> None:
    from automem.memory.structure import builtin_names

    for name in builtin_names():
        s = load_builtin(name)
        assert structure_from_yaml(editor_yaml(s)).id == s.id


# -- the screen ----------------------------------------------------------------------------
@pytest.mark.anyio
async def test_lists_builtins_and_stored_versions_with_lineage_and_scores(tmp_path: Path) -> None:
    app, ctx = _app(tmp_path)
    child = _scored_child(ctx.store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one(StructureTable)
        keys = [row.key.value for row in table.ordered_rows]
        assert keys.index(child) == keys.index(CRAFTER.id) + 1  # right under its parent
        row = table.get_row(child)
        assert "└─ " in str(row[1]) and "crafter-v0" in str(row[1])
        assert row[4] == CRAFTER.id[:8] and row[5] == "critic"
        assert str(row[6]) == "2" and str(row[7]) == "20.0"
        assert str(table.get_row(CRAFTER.id)[0]).startswith("●")  # the default for crafter
        assert _editor(app).original_id == CRAFTER.id and "valid" in _status(app)


@pytest.mark.anyio
async def test_typing_an_invalid_value_names_field_and_line(tmp_path: Path) -> None:
    app, _ = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        area = _editor(app).area
        area.focus()
        area.move_cursor((0, len(area.document.get_line(0))))  # end of "name: crafter-v0"
        await pilot.press("x")
        await pilot.pause(0.5)  # past the debounce
        assert "valid · id" in _status(app) and "edited" in _status(app)
        await pilot.press("!")
        await pilot.pause(0.5)
        assert "line 1: name: String should match pattern" in _status(app)
        assert area.error_rows == {0}

        _set_line(area, "name: crafter-v0x!", "name: crafter-v0")
        _set_line(area, "max_lines: 12", "max_lines: 0")
        await pilot.pause(0.5)
        row = area.text.splitlines().index("  max_lines: 0")
        assert f"line {row + 1}: files.0.max_lines: Input should be greater than or equal to 1" in _status(app)
        assert area.error_rows == {row}
        area.move_cursor((0, 0))
        await pilot.press("ctrl+g")  # go to error selects the offending line
        assert area.selected_text.strip() == "max_lines: 0"


@pytest.mark.anyio
async def test_save_stores_a_new_version_and_never_overwrites(tmp_path: Path) -> None:
    app, ctx = _app(tmp_path)
    ctx.store.save_structure(CRAFTER)
    before = ctx.store.db["structures"].get(CRAFTER.id)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        area = _editor(app).area
        await pilot.press("ctrl+s")  # unchanged: refused
        assert ctx.store.db["structures"].count == 1

        _set_line(area, "max_lines: 12", "max_lines: 0")
        await pilot.press("ctrl+s")  # invalid: refused
        assert ctx.store.db["structures"].count == 1

        _set_line(area, "max_lines: 0", "max_lines: 13")
        area.focus()  # ctrl+s reaches the screen from inside the editor
        await pilot.press("ctrl+s")
        await pilot.pause()
        rows = ctx.store.structures()
        assert len(rows) == 2
        new = next(r for r in rows if r["id"] != CRAFTER.id)
        assert new["parent"] == CRAFTER.id and new["author"] == "human" and new["name"] == "crafter-v0"
        assert ctx.store.db["structures"].get(CRAFTER.id) == before  # the original row is untouched
        saved = structure_from_yaml((tmp_path / "structures" / f"crafter-v0-{new['id'][:8]}.yaml").read_text())
        assert saved.id == new["id"] and saved.parent == CRAFTER.id and saved.files[0].max_lines == 13
        # the new row is selected and loaded; saving it again is refused as identical
        assert app.screen.query_one(StructureTable).current_id == new["id"]
        assert _editor(app).original_id == new["id"] and "unchanged" in _status(app)
        await pilot.press("ctrl+s")
        assert ctx.store.db["structures"].count == 2


@pytest.mark.anyio
async def test_letters_type_in_the_editor_and_commands_reach_the_palette(tmp_path: Path) -> None:
    app, ctx = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Save version", "Use next", "Diff", "Seeds"} <= titles
        area = _editor(app).area
        area.focus()
        area.move_cursor((0, 0))
        await pilot.press("u", "d", "s")
        assert ctx.structure is None and area.text.startswith("udsname:")
        await pilot.press("escape")  # back to the list, where the letters are commands
        assert app.screen.focused is app.screen.query_one(StructureTable)


@pytest.mark.anyio
async def test_returning_to_the_screen_shows_versions_stored_meanwhile(tmp_path: Path) -> None:
    app, ctx = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        _set_line(_editor(app).area, "max_lines: 12", "max_lines: 11")
        other = CRAFTER.derive(author="optimizer", description="from a job")
        ctx.store.save_structure(other)
        app.screen.post_message(ScreenResume())
        await pilot.pause()
        assert other.id in app.screen.query_one(StructureTable).entries
        assert "max_lines: 11" in _editor(app).text  # the open draft is kept


@pytest.mark.anyio
async def test_drafts_survive_moving_between_rows(tmp_path: Path) -> None:
    app, _ = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        _set_line(_editor(app).area, "max_lines: 12", "max_lines: 11")
        await pilot.press("down")  # look at minihack-v0
        await pilot.pause()
        assert "minihack" in _editor(app).text
        await pilot.press("up")
        await pilot.pause()
        assert "max_lines: 11" in _editor(app).text


@pytest.mark.anyio
async def test_use_sets_the_next_episode_structure_and_game(tmp_path: Path) -> None:
    app, ctx = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one(StructureTable)
        table.select(load_builtin("nethack-v0").id)
        await pilot.press("u")
        assert ctx.structure is not None and ctx.structure.name == "nethack-v0" and ctx.game == "nethack"
        assert str(table.get_row(ctx.structure.id)[0]).startswith("●")
        table.select(load_builtin("none").id)
        await pilot.press("u")
        assert ctx.structure.name == "none" and ctx.game == "nethack"  # a game-less structure keeps the game


@pytest.mark.anyio
async def test_diff_two_structures_and_a_draft(tmp_path: Path) -> None:
    app, _ = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("d")  # crafter-v0 is the base
        await pilot.press("down", "d")  # against minihack-v0
        await pilot.pause()
        assert isinstance(app.screen, DiffScreen)
        body = str(app.screen.query_one("#diff-body").render())
        assert "-name: crafter-v0" in body and "+name: minihack-v0" in body
        await pilot.press("escape")
        assert not isinstance(app.screen, DiffScreen)

        await pilot.press("up")  # back to crafter-v0, edit it, diff the draft against its saved self
        await pilot.pause()
        _set_line(_editor(app).area, "max_lines: 12", "max_lines: 13")
        await pilot.press("d", "d")
        await pilot.pause()
        body = str(app.screen.query_one("#diff-body").render())
        assert "-  max_lines: 12" in body and "+  max_lines: 13" in body


@pytest.mark.anyio
async def test_seed_editor_applies_into_the_yaml_and_revalidates(tmp_path: Path) -> None:
    app, _ = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, SeedScreen)
        seed_area = app.screen.query_one("#seed-text")
        assert seed_area.text.startswith("1. collect wood")  # strategy.md, the first file
        seed_area.text = "1. find water first\n2. then wood"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, SeedScreen)
        editor = _editor(app)
        assert editor.parsed is not None and editor.parsed.files[0].seed == "1. find water first\n2. then wood"
        assert "edited" in _status(app)

        await pilot.press("s")  # a seed over the file's 12-line cap: the editor shows the error
        await pilot.pause()
        app.screen.query_one("#seed-text").text = "\n".join(f"{i}. step" for i in range(20))
        await pilot.pause()
        assert "20/12 lines" in str(app.screen.query_one("#seed-caps").render())
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert editor.parsed is None and "files.0: seed content is larger than the file's caps" in _status(app)


def _optimized_children(store: Store) -> tuple[str, str]:
    """Two critic children of crafter-v0 that loop 1 judged: the first accepted, the second rejected."""
    accepted = _scored_child(store)
    rejected = store.save_structure(CRAFTER.derive(author="critic", description="a worse revision"))
    opt = store.db["optimizations"].insert(
        {"name": "opt-a", "game": "crafter", "root_structure_id": CRAFTER.id, "critic": "heuristic",
         "agent_engine": "llamacpp", "config": "{}", "status": "finished", "created_at": "2026-01-01T10:00:00"}
    ).last_pk  # fmt: skip
    for candidate, (sid, status, reason, changes) in enumerate([
        (accepted, "accepted", "mean progression 20.00 ± 10.00 > parent 5.00 ± 1.00",
         ["files.strategy.md.max_lines: 12 -> 20", "helpers.stuck_detector: added"]),
        (rejected, "rejected", "mean progression 2.00 ± 1.00 <= parent 5.00 ± 1.00", ["context.history_steps: 4 -> 1"]),
    ]):  # fmt: skip
        store.db["optimize_iterations"].insert(
            {"optimization_id": opt, "iteration": 0, "candidate": candidate, "parent_id": CRAFTER.id,
             "candidate_id": sid, "critic": "heuristic", "status": status, "reason": reason,
             "changes": json.dumps(changes), "wording": json.dumps(["description"]), "parent_mean": 5.0,
             "candidate_mean": 20.0 if status == "accepted" else 2.0}
        )  # fmt: skip
    return accepted, rejected


@pytest.mark.anyio
async def test_loop_1_decisions_show_in_the_table_and_summary(tmp_path: Path) -> None:
    app, ctx = _app(tmp_path)
    accepted, rejected = _optimized_children(ctx.store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one(StructureTable)
        assert str(table.get_row(accepted)[5]) == "critic ✓" and str(table.get_row(rejected)[5]) == "critic ✗"
        assert table.get_row(CRAFTER.id)[5] == "built-in"  # never proposed by loop 1: no mark
        info = app.screen.query_one("#structure-info")
        assert "loop 1" not in str(info.render())

        table.select(accepted)
        await pilot.pause()
        text = str(info.render())
        assert "loop 1 ✓ accepted  opt-a · iteration 0 candidate 0 · critic heuristic" in text
        assert "mean progression 20.00 ± 10.00 > parent 5.00 ± 1.00" in text
        assert "• files.strategy.md.max_lines: 12 -> 20" in text and "• helpers.stuck_detector: added" in text
        assert "wording: description" in text

        table.select(rejected)
        await pilot.pause()
        text = str(info.render())
        assert "loop 1 ✗ rejected" in text and "<= parent 5.00 ± 1.00" in text
        assert "• context.history_steps: 4 -> 1" in text and "max_lines: 12 -> 20" not in text

        await pilot.press("p")  # this lineage step as a YAML diff
        await pilot.pause()
        assert isinstance(app.screen, DiffScreen)
        body = str(app.screen.query_one("#diff-body").render())
        assert "+description: a worse revision" in body
        await pilot.press("escape")
        table.select(CRAFTER.id)
        await pilot.press("p")  # a root: nothing to compare with
        await pilot.pause()
        assert not isinstance(app.screen, DiffScreen)


def test_lineage_rows_nest_children_under_parents(tmp_path: Path) -> None:
    from automem.tui.widgets.structure_catalog import StructureEntry

    a = CRAFTER
    b = a.derive(author="human", description="b")
    c = b.derive(author="human", description="c")
    d = a.derive(author="human", description="d")
    rows = tree_rows([StructureEntry(s.id, s, builtin=False) for s in (a, b, c, d)])
    assert [(e.structure.description[:1], prefix) for e, prefix in rows] == [
        ("S", ""),
        ("b", "├─ "),
        ("c", "│  └─ "),
        ("d", "└─ "),
    ]


def test_snapshot(tmp_path: Path, snap_compare) -> None:
    app, ctx = _app(tmp_path)
    _scored_child(ctx.store)

    async def run_before(pilot) -> None:
        await pilot.pause()
        await pilot.press("down")  # the critic's child of crafter-v0
        area = _editor(app).area
        _set_line(area, "max_chars: 600", "max_chars: 6")  # invalid: the line is marked
        _editor(app).validate()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
