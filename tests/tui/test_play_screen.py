"""The play screen driven by keys: pause, step, one turn, take over, edit a file, new episode, quit.

Most tests play the recorded crafter episode through the replay engine (the recorded model outputs,
in order), which makes them deterministic; one test runs the bundled model live.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tui_helpers import wait_for

from automem.memory.structure import structure_from_yaml
from automem.tui.app import AutomemApp
from automem.tui.context import TuiContext
from automem.tui.screens.play import PlayScreen
from automem.tui.screens.play_dialogs import EditFileDialog, NewEpisodeDialog
from automem.tui.widgets.actions_pane import TurnLine

SIZE = (160, 48)
FIXTURE = Path(__file__).parent.parent / "data" / "episodes" / "crafter-seed7.json"


def replay_app(store, recorded, **overrides) -> tuple[AutomemApp, TuiContext]:
    episode_id = recorded(store, "crafter-seed7")
    structure = structure_from_yaml(json.loads(FIXTURE.read_text())["structure_yaml"])
    ctx = TuiContext(
        store=store, game="crafter", seed=7, structure=structure, engine_spec=f"replay:{episode_id}",
        engine_options={"db": str(store.path)}, start_paused=True, max_steps=12, **overrides,
    )  # fmt: skip
    return AutomemApp(ctx, mode="play"), ctx


def rows(store, sql: str, *args):  # type: ignore[no-untyped-def]
    return store.db.execute(sql, list(args)).fetchall()


async def started(pilot) -> PlayScreen:  # type: ignore[no-untyped-def]
    screen = pilot.app.screen
    assert isinstance(screen, PlayScreen)
    await wait_for(pilot, lambda: screen.episode_id is not None)
    return screen


@pytest.mark.anyio
async def test_pause_step_turn_and_run(store, recorded):
    app, _ = replay_app(store, recorded, step_delay=0.25)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        assert screen.state == "paused"
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.step == 1)
        assert rows(store, "SELECT step, action, action_source FROM steps WHERE episode_id = ?", screen.episode_id) == [
            (0, "sleep", "model")
        ]
        await pilot.press("full_stop")  # one model turn: step 1's LOG turn, no action yet
        await wait_for(pilot, lambda: screen.driver.turn_budget == 0 and screen.driver.runner.mid_step)
        assert screen.step == 1
        pane = screen.query_one("#actions-pane")
        # the turn's line is posted to the pane after the driver's state changes: wait for it
        await wait_for(pilot, lambda: isinstance(pane.entries[-1], TurnLine))
        last = pane.entries[-1]
        assert (last.step, last.phase, last.parsed) == (1, "LOG", "DONE")
        await pilot.press("space")  # run
        assert screen.state.startswith("running")
        await wait_for(pilot, lambda: screen.step >= 4)
        await pilot.press("space")  # pause: takes effect at the next turn boundary
        assert screen.state == "paused"
        await wait_for(pilot, lambda: not screen.driver.busy.is_set())
        await pilot.pause(0.3)
        paused_at = screen.step
        await pilot.pause(0.5)
        assert screen.step == paused_at
        stored = rows(store, "SELECT count(*) FROM steps WHERE episode_id = ?", screen.episode_id)[0][0]
        assert stored == paused_at
        # speed control: the delay between steps while running
        await pilot.press("minus", "minus")
        assert screen.driver.delay == 1.0
        await pilot.press("plus")
        assert screen.driver.delay == 0.5
        status = str(screen.query_one("#play-status").render())
        assert f"step {paused_at}" in status and "crafter-v0" in status and "paused" in status


@pytest.mark.anyio
async def test_take_over_with_an_action_and_a_memory_operation(store, recorded):
    app, _ = replay_app(store, recorded)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        await pilot.press("t")
        box = screen.query_one("#take-over")
        assert box.display and box.has_focus
        await pilot.press(*"APPEND strategy.md :: water is east", "enter")
        await wait_for(pilot, lambda: "water is east" in screen.memory.get("strategy.md", ""))
        await pilot.press(*"move_right", "enter")  # a bare action name
        await wait_for(pilot, lambda: screen.step == 1)
        await pilot.press(*"WRITE ../outside.md :: x", "enter")  # refused: outside the folder
        await pilot.press(*"fly", "enter")  # not an action: an error, nothing played
        await pilot.pause(0.3)
        assert screen.step == 1
        await pilot.press("escape")
        assert not box.display
        ops = rows(store, "SELECT step, source, verb, path, ok FROM memory_ops WHERE episode_id = ? ORDER BY id",
                   screen.episode_id)  # fmt: skip
        assert ops[0] == (0, "human", "append", "strategy.md", 1)
        steps = rows(store, "SELECT step, action, action_source FROM steps WHERE episode_id = ?", screen.episode_id)
        assert steps == [(0, "move_right", "human")]
        await app.action_quit()
    # quitting mid-step keeps the refused operation (a human op of the unfinished step) and closes the episode
    assert rows(store, "SELECT status FROM episodes WHERE id = ?", screen.episode_id) == [("interrupted",)]
    assert (1, "human", "write", "../outside.md", 0) in rows(
        store, "SELECT step, source, verb, path, ok FROM memory_ops WHERE episode_id = ?", screen.episode_id
    )
    assert rows(store, "PRAGMA integrity_check") == [("ok",)]


@pytest.mark.anyio
async def test_edit_a_memory_file_in_place(store, recorded):
    app, _ = replay_app(store, recorded)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        pane = screen.query_one("#memory-pane")
        pane.select("progress.md")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditFileDialog))
        app.screen.query_one("#edit-text").text = "lake: 3 east\n"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: screen.memory.get("progress.md") == "lake: 3 east\n")
        assert "lake: 3 east" in str(pane.query_one("#mem-content").render())
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.step == 1)
        ops = rows(store, "SELECT step, phase, source, verb, path FROM memory_ops WHERE episode_id = ?",
                   screen.episode_id)  # fmt: skip
        assert (0, "HUMAN", "human", "write", "progress.md") in ops


async def submit(pilot, dialog) -> None:  # type: ignore[no-untyped-def]
    dialog.query_one("#new-seed").focus()
    await pilot.press("enter")
    await pilot.pause()


@pytest.mark.anyio
async def test_new_episode_dialog_checks_its_input(store, recorded):
    app, ctx = replay_app(store, recorded)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        first = screen.episode_id
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewEpisodeDialog))
        dialog = app.screen
        dialog.query_one("#new-seed").value = "x"
        await submit(pilot, dialog)
        assert "whole number" in str(dialog.query_one("#dialog-error").render())
        dialog.query_one("#new-seed").value = "11"
        dialog.query_one("#new-structure").value = "nethack-v0"
        await submit(pilot, dialog)
        assert "nethack" in str(dialog.query_one("#dialog-error").render())
        dialog.query_one("#new-structure").value = "crafter-v0"
        await submit(pilot, dialog)
        await wait_for(pilot, lambda: screen.episode_id not in (None, first))
        assert ctx.seed == 11
        assert rows(store, "SELECT status FROM episodes WHERE id = ?", first) == [("interrupted",)]
        assert rows(store, "SELECT seed FROM episodes WHERE id = ?", screen.episode_id) == [(11,)]


@pytest.mark.anyio
@pytest.mark.model
async def test_keys_answer_while_the_bundled_model_generates(store):
    """Live: the bundled model plays; a key pressed mid-generation changes the state at once."""
    ctx = TuiContext(store=store, game="crafter", seed=1, max_steps=3)
    app = AutomemApp(ctx, mode="play")
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        await wait_for(pilot, lambda: screen.driver.busy.is_set(), timeout=120, step=0.01)
        await pilot.press("space")
        assert screen.state == "paused"  # applied by the UI while the model was still generating
        await wait_for(pilot, lambda: not screen.driver.busy.is_set(), timeout=120)
        # the turn that was generating posts its entry after the driver is idle: let the UI take it
        await pilot.pause(0.5)
        turns = len(screen.query_one("#actions-pane").entries)
        await pilot.pause(1.0)
        assert len(screen.query_one("#actions-pane").entries) == turns  # no turn started after the pause
        await app.action_quit()
    calls = rows(store, "SELECT count(*) FROM llm_calls")[0][0]
    assert calls >= 1
    assert rows(store, "SELECT status FROM episodes") == [("interrupted",)]


def test_play_snapshot(snap_compare, store, recorded):
    app, _ = replay_app(store, recorded)

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        screen = await started(pilot)
        for n in range(1, 9):
            await pilot.press("s")
            await wait_for(pilot, lambda n=n: screen.step == n)
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_the_take_over_hint_shows_the_real_command_syntax() -> None:
    from automem.memory.ops import Operation
    from automem.memory.syntax import parse_command
    from automem.tui.screens.play import TAKE_OVER_EXAMPLE, TAKE_OVER_HINT

    parsed = parse_command(TAKE_OVER_EXAMPLE)
    assert TAKE_OVER_EXAMPLE in TAKE_OVER_HINT
    assert isinstance(parsed, Operation)
    assert (parsed.verb.value, parsed.path, parsed.text) == ("append", "notes.md", "text")
