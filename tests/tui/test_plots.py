"""The plots: loop 1's progression on the structures screen, a fine-tuning job's losses on the jobs
screen, memory size per file in replay (v on each); pilot tests and snapshots at 120x36."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_plot_series import _training_run, optimization_fixture
from tui_helpers import wait_for

from automem.finetune.losses import LossCurve
from automem.memory.structure import load_builtin
from automem.optimize.progression import Progression
from automem.store.db import Store
from automem.tui.app import AutomemApp
from automem.tui.context import TuiContext
from automem.tui.screens.jobs import JobsScreen
from automem.tui.screens.replay import ReplayScreen
from automem.tui.widgets.plots import PlotScreen, SeriesPlot
from automem.tui.widgets.structure_list import StructureTable

SIZE = (120, 36)


def _plot_text(plot: SeriesPlot) -> str:
    return str(plot.render())


def _structures_app(tmp_path: Path) -> tuple[AutomemApp, Store, dict[str, str]]:
    store = Store(tmp_path / "a.db")
    ids = optimization_fixture(store)
    return AutomemApp(TuiContext(store=store, game="crafter"), mode="structures"), store, ids


def _jobs_app(tmp_path: Path) -> tuple[AutomemApp, Store]:
    store = Store(tmp_path / "a.db")
    _training_run(store)
    optimization_fixture(store)
    for kind, argv in (
        ("optimize", ["optimize", "crafter", "--run-name", "opt-a"]),
        ("eval", ["eval", "crafter", "--seeds", "1-2"]),
        ("finetune", ["finetune", "--dataset", "ds", "--out", "tr1"]),
    ):
        job = store.insert_job(kind, f"{kind} job", argv)
        store.update_job(job, status="finished", started_at="2026-01-01T09:00:00",
                         finished_at="2026-01-01T09:10:00", exit_code=0)  # fmt: skip
    return AutomemApp(TuiContext(store=store, game="crafter"), mode="jobs"), store


@pytest.mark.anyio
async def test_structures_progression_plot(tmp_path: Path) -> None:
    app, _, ids = _structures_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one(StructureTable)
        table.select(load_builtin("none").id)  # a built-in no optimization used
        await pilot.pause()
        await pilot.press("v")
        await pilot.pause()
        assert not isinstance(app.screen, PlotScreen)
        table.select(ids["d"])
        await pilot.pause()
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, PlotScreen))
        plot = app.screen.query_one(SeriesPlot)
        await pilot.pause()
        text = _plot_text(plot)
        assert "opt-a: progression per iteration" in text and "iteration" in text
        assert "accepted" in text and "rejected" in text and "raced out" in text and "best kept" in text
        note = str(app.screen.query_one("#plot-note").render())
        assert "1 of 4 judged candidates accepted" in note and "automem structures progression opt-a" in note
        assert f"◆ crafter-v0 {ids['d'][:8]}" in note  # d was judged: its point is marked
        assert "selected" in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, PlotScreen)


@pytest.mark.anyio
async def test_jobs_loss_and_progression_plots(tmp_path: Path) -> None:
    app, store = _jobs_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await wait_for(pilot, lambda: screen.selected == 3)  # the newest: the fine-tuning job
        await pilot.press("v")
        plot = screen.query_one("#job-plot", SeriesPlot)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.plot_shown and plot.display
        text = _plot_text(plot)
        assert "tr1 (running): loss per step" in text and "train" in text and "eval" in text
        # a running job's curve grows: the next refresh draws the step logged meanwhile
        row = store.training_run_by_name("tr1")
        log = json.loads(row["log"]) + [{"step": 4, "loss": 1.2}]
        store.update_training_run(row["id"], log=json.dumps(log), steps=4, status="finished")
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "tr1 (finished)" in _plot_text(plot)
        await pilot.press("up")  # the eval job: no plot, the pane says why
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.selected == 2 and "has no plot" in _plot_text(plot)
        await pilot.press("up")  # the optimization
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "opt-a: progression per iteration" in _plot_text(plot)
        await pilot.press("v")  # back to the log
        await pilot.pause()
        assert not screen.plot_shown


@pytest.mark.anyio
async def test_replay_memory_size_plot(store, recorded) -> None:  # type: ignore[no-untyped-def]
    episode = recorded(store, "crafter-seed7")
    app = AutomemApp(TuiContext(store=store, extra={"episode": episode}), mode="replay")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await pilot.pause()
        plot = screen.query_one("#memory-plot", SeriesPlot)
        assert not plot.display and screen.sizes is None  # hidden until asked for
        await pilot.press("v")
        await pilot.pause()
        assert plot.display and screen.sizes is not None
        assert f"episode {episode}: memory chars per file" in _plot_text(plot)
        assert "actions.md" in _plot_text(plot)
        before = _plot_text(plot)
        await pilot.press("w")  # to the first write: the step line moves
        await pilot.pause()
        assert screen.index == 7 and _plot_text(plot) != before
        await pilot.press("v")
        await pilot.pause()
        assert not plot.display


def test_series_plot_says_why_it_is_empty() -> None:
    plot = SeriesPlot()
    plot.show("no data yet", title="job 3")
    plot.show(LossCurve("tr", "running", 0))
    plot.show(Progression("o", "crafter", "running", "r", [], []))


# -- snapshots ---------------------------------------------------------------------------
def test_structures_plot_snapshot(tmp_path: Path, snap_compare) -> None:  # type: ignore[no-untyped-def]
    app, _, ids = _structures_app(tmp_path)

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.pause()
        app.screen.query_one(StructureTable).select(ids["a"])
        await pilot.pause()
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, PlotScreen))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_jobs_loss_plot_snapshot(tmp_path: Path, snap_compare) -> None:  # type: ignore[no-untyped-def]
    app, _ = _jobs_app(tmp_path)

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        screen = app.screen
        await wait_for(pilot, lambda: screen.selected == 3)
        await pilot.press("v")
        await app.workers.wait_for_complete()
        # the curve arrives from a refresh thread: on a loaded machine it can land after the workers
        await wait_for(pilot, lambda: isinstance(screen.query_one(SeriesPlot).shown, LossCurve))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_replay_memory_plot_snapshot(store, recorded, snap_compare) -> None:  # type: ignore[no-untyped-def]
    episode = recorded(store, "crafter-seed7")
    app = AutomemApp(TuiContext(store=store, extra={"episode": episode}), mode="replay")

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.pause()
        await pilot.press("v", "w")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
