"""The jobs screen: start an evaluation or an optimization job from its form, see it run, cancel it; snapshots."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest
from textual.widgets import Input, Log

from automem import jobs
from automem.jobs import supervisor
from automem.store.db import Store
from automem.tui.app import AutomemApp
from automem.tui.context import TuiContext
from automem.tui.screens.jobs import JobsScreen
from automem.tui.widgets.job_form import EvalJobForm, FinetuneJobForm, MineJobForm, OptimizeJobForm, PipelineJobForm

SIZE = (160, 48)


pytestmark = pytest.mark.usefixtures("no_stray_jobs")


def _app(tmp_path: Path) -> tuple[AutomemApp, TuiContext]:
    ctx = TuiContext(store=Store(tmp_path / "a.db"), game="crafter")
    return AutomemApp(ctx, mode="jobs"), ctx


def _rows(store: Store) -> list[dict]:
    return list(store.db.execute("SELECT id, status, argv FROM jobs").fetchall())


async def _until(pilot, check, timeout_s: float, step_s: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(step_s)
        await pilot.pause()


@pytest.mark.anyio
async def test_start_from_the_form_then_cancel(tmp_path: Path) -> None:
    app, ctx = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await pilot.press("n")
        form = app.screen
        assert isinstance(form, EvalJobForm)
        assert form.value("job-seeds") == "42-43" and form.value("job-engine") == "llamacpp"
        # typed as a person would: a bad seed list is refused inside the form
        form.query_one("#job-seeds").value = ""
        await pilot.click("#job-seeds")
        await pilot.press(*"4x-2", "enter")
        assert app.screen is form
        assert "bad seed" in str(form.query_one("#job-form-error").render())
        assert _rows(ctx.store) == []

        form.query_one("#job-seeds").value = "0"
        form.query_one("#job-max-steps").value = "50"
        form.query_one("#job-run-name").value = "from-the-tui"
        await pilot.click("#job-start")
        await pilot.pause()
        assert app.screen is screen

        await _until(pilot, lambda: any(j.status == "running" for j in screen.jobs.values()), 30)
        (job,) = screen.jobs.values()
        assert job.argv[:2] == ["eval", "crafter"] and "--run-name" in job.argv and job.title == "from-the-tui"
        assert screen.selected == job.id and screen.table.row_count == 1
        assert str(screen.table.get_cell(str(job.id), "status")) == "running"
        log = screen.query_one("#job-log", Log)
        await _until(pilot, lambda: any(line.startswith("$ automem eval crafter") for line in log.lines), 10)

        await pilot.press("c")
        await _until(pilot, lambda: jobs.get_job(ctx.store, job.id).status == "cancelled", 60)
        await _until(pilot, lambda: str(screen.table.get_cell(str(job.id), "status")) == "cancelled", 5)
    row = ctx.store.db["jobs"].get(job.id)
    assert row["status"] == "cancelled" and json.loads(row["argv"])[0] == "eval"
    ctx.store.close()


@pytest.mark.anyio
async def test_start_an_optimization_from_its_form_then_cancel(tmp_path: Path) -> None:
    app, ctx = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await pilot.press("o")
        form = app.screen
        assert isinstance(form, OptimizeJobForm)
        assert (form.value("job-critic"), form.value("job-iterations"), form.value("job-candidates")) == (
            "heuristic", "3", "2",
        )  # fmt: skip
        assert form.value("job-agent-engine") == "llamacpp" and form.value("job-seeds") == "42-43"
        # a critic engine that does not exist is refused inside the form: nothing starts
        form.query_one("#job-critic").value = "gpt:x"
        await pilot.click("#job-critic")
        await pilot.press("enter")
        assert app.screen is form
        assert "critic: unknown engine" in str(form.query_one("#job-form-error").render())
        assert _rows(ctx.store) == []

        form.query_one("#job-critic").value = "heuristic"
        form.query_one("#job-seeds").value = "0"
        form.query_one("#job-iterations").value = "1"
        form.query_one("#job-candidates").value = "1"
        await pilot.click("#job-start")
        await pilot.pause()
        assert app.screen is screen

        await _until(pilot, lambda: any(j.status == "running" for j in screen.jobs.values()), 30)
        (job,) = screen.jobs.values()
        assert job.kind == "optimize" and job.argv[:2] == ["optimize", "crafter"]
        assert job.argv[job.argv.index("--critic") + 1] == "heuristic" and "--db" in job.argv
        assert job.title == "optimize crafter default · critic heuristic"
        assert str(screen.table.get_cell(str(job.id), "kind")) == "optimize"
        await pilot.press("c")  # at once: the job must not keep running after the test
        await _until(pilot, lambda: not jobs.get_job(ctx.store, job.id).active, 60)
    assert ctx.store.db["jobs"].get(job.id)["status"] == "cancelled"
    ctx.store.close()


@pytest.mark.anyio
async def test_a_pipeline_from_its_form_and_its_cancel_stops_the_running_stage(tmp_path: Path) -> None:
    app, ctx = _app(tmp_path)
    small = tmp_path / "small.yaml"
    small.write_text(
        "name: tui\ngame: crafter\nsteps: 50\nseeds: {eval: 42, search: 1, train: 1000}\n"
        "optimize: {iterations: 1, candidates: 1}\n"
    )
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await pilot.press("p")
            form = app.screen
            assert isinstance(form, PipelineJobForm) and form.value("job-file") == "crafter"
            form.query_one("#job-file").value = str(tmp_path / "missing.yaml")
            await pilot.click("#job-start")
            assert app.screen is form and "pipeline file not found" in str(form.query_one("#job-form-error").render())
            form.query_one("#job-file").value = str(small)
            await pilot.click("#job-file")
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is screen, form.query_one("#job-form-error").render()
            # the pipeline job starts its first stage as a job of its own
            await _until(
                pilot, lambda: any(j.kind == "pipeline:root" and j.active for j in jobs.list_jobs(ctx.store)), 60
            )
            (pipeline,) = [j for j in jobs.list_jobs(ctx.store) if j.kind == "pipeline"]
            assert pipeline.argv[:2] == ["pipeline", str(small)] and pipeline.title == f"pipeline {small}"
            screen.selected = pipeline.id
            await pilot.press("c")
            await _until(pilot, lambda: not jobs.get_job(ctx.store, pipeline.id).active, 90)
            # the stage the pipeline was waiting on is cancelled with it: no evaluation left running
            await _until(pilot, lambda: not any(j.active for j in jobs.list_jobs(ctx.store)), 90)
            statuses = {j.kind: j.status for j in jobs.list_jobs(ctx.store)}
    finally:
        for job in jobs.list_jobs(ctx.store):  # a stage left running would play on after the test: stop it
            if job.active and job.pid:
                os.killpg(job.pid, signal.SIGKILL)
    assert statuses == {"pipeline": "cancelled", "pipeline:root": "cancelled"}, statuses
    assert ctx.store.pipeline_by_name("tui")["status"] == "interrupted"
    ctx.store.close()


@pytest.mark.anyio
async def test_cancel_without_a_running_job_only_warns(tmp_path: Path) -> None:
    app, ctx = _app(tmp_path)
    _fixture_jobs(ctx.store, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await pilot.pause()
        assert screen.selected == 4  # the newest job is selected on open
        screen.select(1)  # finished
        await pilot.press("c")
        await pilot.pause()
        assert ctx.store.db["jobs"].get(1)["status"] == "finished"
    ctx.store.close()


# -- snapshot -------------------------------------------------------------------------------------
FIXTURE_LOG = """$ automem eval crafter --seeds 42-45 --max-steps 20 --run-name nightly
run nightly (id 1): 4 episodes to play, 0 already finished, 0 restarted
episodes ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 2/4 last: default seed 43 9.1% 0:01:12
"""


def _fixture_jobs(store: Store, tmp_path: Path) -> None:
    """Four jobs as a restarted TUI finds them: fixed times, one running (pid 4242, kept alive below)."""
    log = tmp_path / "jobs" / "4.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(FIXTURE_LOG, encoding="utf-8")
    base = {"kind": "eval", "progress_info": "", "error": None, "exit_code": None, "log_path": None}
    rows = [
        dict(base, id=1, title="crafter crafter-v0 seeds 42-43", status="finished", progress_done=2,
             progress_total=2, progress_info="last: default seed 43 4.5%", exit_code=0, pid=101,
             argv=["eval", "crafter", "--seeds", "42-43"]),
        dict(base, id=2, title="minihack none seeds 0", status="failed", progress_done=0, progress_total=1,
             exit_code=2, error="error: unknown engine 'gpt'", pid=102, argv=["eval", "minihack", "--seeds", "0"]),
        dict(base, id=3, title="nethack default seeds 1-9", status="cancelled", progress_done=3, progress_total=9,
             exit_code=130, pid=103, argv=["eval", "nethack", "--seeds", "1-9"]),
        dict(base, id=4, title="nightly", status="running", progress_done=2, progress_total=4,
             progress_info="last: default seed 43 9.1%", pid=4242, log_path=str(log),
             argv=["eval", "crafter", "--seeds", "42-45", "--max-steps", "20", "--run-name", "nightly"]),
    ]  # fmt: skip
    for i, row in enumerate(rows):
        row["argv"] = json.dumps(row["argv"])
        row["created_at"] = f"2026-01-0{i + 1}T10:00:00.000+00:00"
        row["started_at"] = f"2026-01-0{i + 1}T10:00:01.000+00:00"
        row["finished_at"] = None if row["status"] == "running" else f"2026-01-0{i + 1}T11:00:00.000+00:00"
        store.db["jobs"].insert(row)


@pytest.fixture
def pid_4242_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    # the running fixture job has no process: reconciling would mark it lost
    monkeypatch.setattr(supervisor, "_alive", lambda pid: pid == 4242)


def test_snapshot(tmp_path: Path, snap_compare, pid_4242_alive) -> None:  # type: ignore[no-untyped-def]
    app, ctx = _app(tmp_path)
    _fixture_jobs(ctx.store, tmp_path)

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await _until(pilot, lambda: screen.selected == 4 and len(screen.query_one("#job-log", Log).lines) >= 3, 10)
        await app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_of_the_form_with_an_error(tmp_path: Path, snap_compare) -> None:  # type: ignore[no-untyped-def]
    app, _ = _app(tmp_path)

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("n")
        form = app.screen
        assert isinstance(form, EvalJobForm)
        for field in form.query(Input):
            field.cursor_blink = False  # a blinking cursor is on or off depending on when the shot is taken
        form.query_one("#job-workers", Input).value = "0"
        await pilot.press("enter")  # in the seeds field; a click would leave a hover or pressed style behind
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


@pytest.mark.anyio
async def test_loop_two_from_the_jobs_screen_mine_then_finetune(tmp_path: Path, recorded) -> None:  # type: ignore[no-untyped-def]
    app, ctx = _app(tmp_path)
    recorded(ctx.store, "crafter-seed7")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("m")
        form = app.screen
        assert isinstance(form, MineJobForm)
        assert form.value("job-runs") == "fixture-crafter-seed7" and form.value("job-min-score") == "2"
        form.query_one("#job-runs").value = "no-such-run"
        form.query_one("#job-out").value = "ds1"
        await pilot.click("#job-start")
        assert app.screen is form and "no run named 'no-such-run'" in str(form.query_one("#job-form-error").render())
        form.query_one("#job-runs").value = "fixture-crafter-seed7"
        form.query_one("#job-min-score").value = "1"
        await pilot.click("#job-min-score")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen, form.query_one("#job-form-error").render()
        await _until(pilot, lambda: any(j.status == "finished" for j in screen.jobs.values()), 120)
        (mined,) = screen.jobs.values()
        assert mined.kind == "mine" and mined.title == "mine fixture-crafter-seed7 → ds1"
        assert ctx.store.db.execute("SELECT kept FROM datasets WHERE name = 'ds1'").fetchone()[0] > 0

        await pilot.press("f")
        form = app.screen
        assert isinstance(form, FinetuneJobForm)
        assert (form.value("job-dataset"), form.value("job-base"), form.value("job-backend")) == (
            "ds1", "bundled", "auto",
        )  # fmt: skip
        assert app.focused is form.query_one("#job-dataset")
        form.query_one("#job-out").value = "spec"
        form.query_one("#job-lr").value = "fast"
        await pilot.click("#job-start")
        assert app.screen is form and "learning rate must be a number" in str(
            form.query_one("#job-form-error").render()
        )
        form.query_one("#job-lr").value = "1e-4"
        form.query_one("#job-max-steps").value = "1"
        await pilot.click("#job-max-steps")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen
        # the job just started gets selected, even when a refresh in flight listed it (or only the
        # mine job) before the start's own callback ran
        await _until(
            pilot,
            lambda: (
                len(screen.jobs) == 2 and screen.jobs[max(screen.jobs)].active and screen.selected == max(screen.jobs)
            ),
            30,
        )
        job = screen.jobs[max(screen.jobs)]
        assert job.kind == "finetune" and job.argv[:5] == ["finetune", "--dataset", "ds1", "--out", "spec"]
        assert job.argv[job.argv.index("--lr") + 1] == "1e-4" and "--train-steps" in job.argv
        await pilot.press("c")  # a training step costs tens of seconds here: cancel rather than wait
        await _until(pilot, lambda: not jobs.get_job(ctx.store, job.id).active, 60)
    assert ctx.store.db["jobs"].get(job.id)["status"] == "cancelled"
    ctx.store.close()
