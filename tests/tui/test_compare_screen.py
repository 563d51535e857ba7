"""The compare screen: two or three episodes of one seed stepped together, opened from the command
line or from marks in the replay table; refusals as notifications."""

from __future__ import annotations

import pytest
from tui_helpers import wait_for

from automem.tui.app import AutomemApp
from automem.tui.context import TuiContext
from automem.tui.screens.compare import ComparePane, CompareScreen
from automem.tui.screens.replay import JumpDialog, ReplayScreen

SIZE = (160, 48)


def _text(widget) -> str:  # type: ignore[no-untyped-def]
    return str(widget.render())


def _pane_text(pane: ComparePane) -> str:
    return "\n".join(_text(s) for s in pane.query(".compare-step, .compare-facts"))


def _notes(app) -> list[str]:  # type: ignore[no-untyped-def]
    return [n.message for n in app._notifications]


@pytest.mark.anyio
async def test_three_episodes_step_together(store, compared):
    base, better, shorter = compared
    app = AutomemApp(TuiContext(store=store, extra={"compare": [base, better, shorter]}), mode="replay")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        screen = app.screen
        panes = screen.panes
        assert len(panes) == 3 and screen.index == 0
        assert [p.border_title for p in panes] == [
            f"#{e} crafter-v0 · SmolLM2-135M-Instruct.Q4_1.gguf" for e in compared
        ]
        assert all(p.size.width <= 54 for p in panes)  # three fit at 160 columns
        assert panes[1].border_subtitle == "run fixture-crafter-seed7-better"
        summary = screen.query_one("#compare-summary")
        assert "crafter/default seed 7 · step 0/11" in _text(summary) and "level" in _text(summary)
        await pilot.press("right")
        assert screen.index == 1
        await pilot.press("d")  # step 2: the better one moved left
        assert screen.index == 2 and "≠ differs" in _text(summary)
        assert [p.actions.entries[-1].action for p in panes] == ["noop", "move_left", "noop"]
        await pilot.press("right", "right", "right")  # step 5: the better one collects wood
        assert screen.index == 5
        assert f"#{better} ahead" in _text(summary)
        assert panes[1].has_class("-ahead") and not panes[0].has_class("-ahead")
        assert "★ 1 collect_wood" in _pane_text(panes[1])
        await pilot.press("d")  # step 10: only the recorded one upserts map.md; the shorter one has ended
        assert screen.index == 10
        assert "✎ upsert map.md" in _pane_text(panes[0]) and "✎" not in _pane_text(panes[1])
        assert "ended at step 7" in _pane_text(panes[2]) and panes[2].has_class("-ended")
        assert "step 10/11" in _pane_text(panes[0])
        await pilot.press("d")  # no difference after: stays, says so
        assert screen.index == 10 and any("no difference after" in n for n in _notes(app))
        await pilot.press("D")
        assert screen.index == 2
        await pilot.press("end")
        assert screen.index == 11
        await pilot.press("home")
        assert screen.index == 0
        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, JumpDialog))
        await pilot.press("9", "enter")
        await wait_for(pilot, lambda: app.screen is screen)
        assert screen.index == 9 and "ended at step 7" in _pane_text(panes[2])
        await pilot.press("r")
        assert all(p.actions.show_raw for p in panes)
        await pilot.press("escape")  # back to the episode table
        assert isinstance(app.screen, ReplayScreen) and app.screen.replay is None


@pytest.mark.anyio
async def test_marks_in_the_table_open_a_compare_and_refusals_notify(store, compared, recorded):
    base, better, _ = compared
    nethack = recorded(store, "nethack-seed7")
    app = AutomemApp(TuiContext(store=store), mode="replay")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        table = screen.query_one("#episodes")
        assert table.get_row_at(0)[0] == str(nethack)  # newest first: nethack, shorter, better, base
        await pilot.press("m")  # nethack; the cursor moves down a row
        assert screen.marked == [nethack] and table.get_row_at(0)[0] == f"● {nethack}"
        await pilot.press("c")  # one marked: refused
        assert isinstance(app.screen, ReplayScreen) and any("mark 2 or 3" in n for n in _notes(app))
        await pilot.press("down", "m", "c")  # nethack and better: not the same game
        assert screen.marked == [nethack, better]
        assert isinstance(app.screen, ReplayScreen)
        assert any("same game, task and seed" in n for n in _notes(app))
        await pilot.press("up", "up", "up", "m")  # unmark nethack
        assert screen.marked == [better] and table.get_row_at(0)[0] == str(nethack)
        await pilot.press("down", "down", "m")  # base
        assert screen.marked == [better, base]
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert [p.replay.episode_id for p in app.screen.lockstep.at(0)] == [better, base]
        assert len(app.screen.panes) == 2
        assert all(p.size.width > 70 for p in app.screen.panes)  # two panes use the width
        await pilot.press("escape")
        assert app.screen is screen and table.get_row_at(2)[0] == f"● {better}"  # the marks stay


@pytest.mark.anyio
async def test_too_many_from_the_command_line_is_a_notification(store, compared):
    app = AutomemApp(TuiContext(store=store, extra={"compare": [*compared, 99]}), mode="replay")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ReplayScreen)
        assert any("2 or 3 episodes, got 4" in n for n in _notes(app))


def test_compare_snapshot(snap_compare, store, compared):
    app = AutomemApp(TuiContext(store=store, extra={"compare": list(compared)}), mode="replay")

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("d", "d")  # step 10: a write in one, the shorter one ended

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_compare_two_nethack_snapshot(snap_compare, store, recorded):
    first = recorded(store, "nethack-seed7")
    second = recorded(store, "nethack-seed7", label="nethack-seed7-again")
    app = AutomemApp(TuiContext(store=store, extra={"compare": [first, second]}), mode="replay")

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("end")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
