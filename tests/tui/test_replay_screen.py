"""The replay screen: the episode table, step navigation, jumps, memory as it was at each step."""

from __future__ import annotations

import pytest
from tui_helpers import wait_for

from automem.tui.app import AutomemApp
from automem.tui.context import TuiContext
from automem.tui.screens.replay import JumpDialog, ReplayScreen

SIZE = (160, 48)


def _text(widget) -> str:  # type: ignore[no-untyped-def]
    return str(widget.render())


@pytest.mark.anyio
async def test_table_open_and_navigate(store, recorded):
    crafter = recorded(store, "crafter-seed7")
    nethack = recorded(store, "nethack-seed7")
    app = AutomemApp(TuiContext(store=store), mode="replay")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        table = screen.query_one("#episodes")
        assert table.row_count == 2
        assert table.get_row_at(0)[0] == str(nethack)  # newest first
        await pilot.press("right")  # no episode open: stepping keys do nothing
        await pilot.press("down", "enter")
        assert screen.replay is not None and screen.replay.episode_id == crafter and screen.index == 0
        await pilot.press("right", "right")
        assert screen.index == 2
        await pilot.press("w")  # next memory write: step 7
        assert screen.index == 7
        panes = screen.query_one("#replay-panes")
        assert panes.memory.selected == "actions.md"
        assert panes.memory.changed == {"actions.md": [1]}
        assert "+2:1:3:2:5" in panes.memory.diffs["actions.md"]
        entries = list(panes.actions.entries)
        assert [(e.phase, e.parsed.split()[0], e.op.ok) for e in entries[:2]] == [
            ("LOG", "insert", False),  # the refused insert, then the append that worked
            ("LOG", "append", True),
        ]
        assert entries[-1].action == "sleep"
        await pilot.press("w")
        assert screen.index == 10 and "water" in panes.memory.files["map.md"]
        await pilot.press("w")  # none after: stays, says so
        assert screen.index == 10
        await pilot.press("W")
        assert screen.index == 7
        await pilot.press("left")
        assert screen.index == 6 and panes.memory.changed == {}
        assert panes.memory.files["actions.md"] == ""
        await pilot.press("end")
        assert screen.index == 11
        await pilot.press("home")
        assert screen.index == 0
        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, JumpDialog))
        await pilot.press("9", "enter")
        await wait_for(pilot, lambda: app.screen is screen)
        assert screen.index == 9
        status = _text(screen.query_one("#replay-status"))
        assert "step 9" in status and "seed 7" in status and "crafter-v0" in status
        await pilot.press("r")
        assert panes.actions.show_raw
        await pilot.press("escape")
        assert screen.replay is None and table.has_focus
        await pilot.press("enter")  # the first row: the NetHack episode
        assert screen.replay.episode_id == nethack
        assert "Agent the" in "\n".join(panes.game._keys[i][0] for i in range(len(panes.game._keys)))


@pytest.mark.anyio
async def test_opened_from_the_command_line_and_stacked_when_narrow(store, recorded):
    episode = recorded(store, "crafter-seed7")
    app = AutomemApp(TuiContext(store=store, extra={"episode": episode}), mode="replay")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert screen.replay is not None and screen.replay.episode_id == episode
        assert screen.query_one("#replay-panes").has_class("-narrow")


def test_replay_snapshot(snap_compare, store, recorded):
    recorded(store, "nethack-seed7")
    episode = recorded(store, "crafter-seed7")
    app = AutomemApp(TuiContext(store=store, extra={"episode": episode}), mode="replay")

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("w", "w")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_episode_table_snapshot(snap_compare, store, recorded):
    recorded(store, "crafter-seed7")
    recorded(store, "nethack-seed7")
    app = AutomemApp(TuiContext(store=store), mode="replay")
    assert snap_compare(app, terminal_size=SIZE)


def test_nethack_replay_snapshot(snap_compare, store, recorded):
    episode = recorded(store, "nethack-seed7")
    app = AutomemApp(TuiContext(store=store, extra={"episode": episode}), mode="replay")

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("end")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
