"""Background jobs: real `automem eval` subprocesses that finish, get cancelled, get killed; the CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from automem import jobs
from automem.cli import app
from automem.jobs import (
    Job,
    JobError,
    cancel_job,
    eval_job_argv,
    finetune_job_argv,
    get_job,
    list_jobs,
    mine_job_argv,
    optimize_job_argv,
    read_log,
    start_job,
)
from automem.memory.structure import load_builtin
from automem.store.db import Store, now

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("no_stray_jobs")


def _eval_argv(tmp_path: Path, name: str, steps: int) -> list[str]:
    return ["eval", "crafter", "--seeds", "0", "--max-steps", str(steps), "--engine", "llamacpp",
            "--run-name", name, "--db", str(tmp_path / "automem.db"), "--out", str(tmp_path / name)]  # fmt: skip


def _wait(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _job(store: Store, job_id: int) -> Job:
    (job,) = [j for j in list_jobs(store) if j.id == job_id]  # through list_jobs: reconciles too
    return job


@pytest.mark.model
def test_eval_job_finishes_with_progress_log_and_run(store: Store, tmp_path: Path) -> None:
    job_id = start_job(store, "eval", _eval_argv(tmp_path, "done", 2), "two steps")
    assert get_job(store, job_id).status == "running" and get_job(store, job_id).pid
    _wait(lambda: not _job(store, job_id).active, 180, "the job to end")
    job = get_job(store, job_id)
    log = read_log(store, job_id)
    assert job.status == "finished", log
    assert (job.progress_done, job.progress_total, job.exit_code) == (1, 1, 0)
    assert job.started_at and job.finished_at and job.error is None
    assert log.startswith("$ automem eval crafter") and "wrote" in log
    assert Path(job.log_path or "") == tmp_path / "jobs" / f"{job_id}.log"
    run = store.run_by_name("done")
    assert run is not None and run["status"] == "finished"
    (episode,) = store.episodes(run["id"])
    assert episode["status"] == "finished" and episode["steps"] == 2


@pytest.mark.model
def test_cancel_stops_the_job_and_interrupts_its_episode(store: Store, tmp_path: Path) -> None:
    job_id = start_job(store, "eval", _eval_argv(tmp_path, "stopped", 50), "fifty steps")
    steps = "SELECT count(*) FROM steps"
    _wait(lambda: store.db.execute(steps).fetchone()[0] >= 1 or not _job(store, job_id).active, 180, "a step")
    job = cancel_job(store, job_id, wait_s=60)
    assert job.status == "cancelled", read_log(store, job_id)
    assert job.exit_code == 130 and job.finished_at  # written by the child on its way out
    run = store.run_by_name("stopped")
    assert run is not None and run["status"] == "interrupted"
    (episode,) = store.episodes(run["id"])
    assert episode["status"] == "interrupted" and 1 <= episode["steps"] < 50
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with pytest.raises(JobError, match="not running"):
        cancel_job(store, job_id)


def test_killed_job_shows_as_lost(store: Store, tmp_path: Path) -> None:
    job_id = start_job(store, "eval", _eval_argv(tmp_path, "killed", 50), "killed")
    _wait(lambda: get_job(store, job_id).started_at is not None, 60, "the child to start")
    os.killpg(get_job(store, job_id).pid or 0, signal.SIGKILL)
    _wait(lambda: _job(store, job_id).status != "running", 10, "reconciling")
    job = get_job(store, job_id)
    assert job.status == "lost" and job.finished_at and "without recording" in (job.error or "")


def test_cancel_at_once_is_cancelled_even_when_a_front_end_reconciles_meanwhile(store: Store, tmp_path: Path) -> None:
    # the signal lands before the child's handler exists, so the child records nothing; another
    # front end listing jobs at that moment sees a dead process and must not call it lost
    job_id = start_job(store, "eval", _eval_argv(tmp_path, "at-once", 50), "at once")
    other = Store(store.path)
    stop = threading.Event()

    def list_until_stopped() -> None:
        while not stop.is_set():
            list_jobs(other)

    lister = threading.Thread(target=list_until_stopped)
    lister.start()
    try:
        cancel_job(store, job_id)
        _wait(lambda: not _job(store, job_id).active, 30, "the job to end")
    finally:
        stop.set()
        lister.join()
        other.close()
    assert get_job(store, job_id).status == "cancelled"


def test_failing_command_records_the_error_line(store: Store, tmp_path: Path) -> None:
    job_id = start_job(store, "eval", ["eval", "chess", "--db", str(store.path)], "no such game")
    _wait(lambda: not _job(store, job_id).active, 60, "the job to fail")
    job = get_job(store, job_id)
    assert job.status == "failed" and job.exit_code == 2
    assert job.error is not None and job.error.startswith("error: unknown game 'chess'")


def test_reconcile_marks_dead_reused_and_stale_pids_lost_or_cancelled(store: Store) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # alive, but not automem
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        rows = [
            {"pid": other.pid, "status": "running", "created_at": "2026-01-01T00:00:00+00:00"},
            {"pid": dead.pid, "status": "running", "created_at": "2026-01-01T00:00:00+00:00"},
            {"pid": None, "status": "queued", "created_at": "2026-01-01T00:00:00+00:00"},  # never launched
            {"pid": None, "status": "queued", "created_at": now()},  # being launched right now
            {"pid": os.getpid(), "status": "finished", "created_at": "2026-01-01T00:00:00+00:00"},
            # killed by a cancel before its handler was installed: it recorded nothing, yet it was asked to stop
            {"pid": dead.pid, "status": "running", "created_at": now(), "cancel_requested_at": now()},
        ]
        for row in rows:
            store.db["jobs"].insert({"kind": "eval", "title": "t", "argv": "[]", **row})
        assert [j.status for j in list_jobs(store)] == ["lost", "lost", "lost", "queued", "finished", "cancelled"]
    finally:
        other.kill()
        other.wait()


def test_run_as_job_records_progress_and_the_outcome(store: Store, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    jobs.report_progress(1, 2, "outside a job")  # a no-op: nothing to write to
    log = tmp_path / "jobs" / "x.log"
    log.parent.mkdir()
    log.write_text("starting\nerror: the last line\n")
    ids = [int(store.db["jobs"].insert({"kind": "eval", "status": "running", "log_path": str(log)}).last_pk)
           for _ in range(2)]  # fmt: skip
    monkeypatch.setenv("AUTOMEM_DB", str(store.path))
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def works() -> None:
        jobs.report_progress(1, 2, "half")

    def fails() -> None:
        raise SystemExit(2)

    try:
        for job_id, entry, code in ((ids[0], works, 0), (ids[1], fails, 2)):
            monkeypatch.setenv(jobs.JOB_ENV, str(job_id))
            with pytest.raises(SystemExit) as exited:
                jobs.run_as_job(entry)
            assert exited.value.code == code
            assert jobs.JOB_ENV not in os.environ  # automem processes the job starts are not the job
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    done, failed = get_job(store, ids[0]), get_job(store, ids[1])
    assert (done.status, done.progress_done, done.progress_total, done.progress_info) == ("finished", 1, 2, "half")
    assert done.pid == os.getpid() and done.started_at and done.finished_at
    assert (failed.status, failed.exit_code, failed.error) == ("failed", 2, "error: the last line")
    jobs.report_progress(2, 2, "after the job")  # no-op again
    assert get_job(store, ids[0]).progress_done == 1


def test_eval_job_argv_checks_fields_like_the_cli() -> None:
    argv = eval_job_argv(game="crafter", seeds="42-43", tasks=" ", max_steps="20", workers="2", run_name="r")
    assert argv == ["eval", "crafter", "--seeds", "42-43", "--steps", "20", "--workers", "2",
                    "--engine", "llamacpp", "--run-name", "r"]  # fmt: skip
    for fields, needle in [
        ({"seeds": "4x-2"}, "bad seed"),
        ({"seeds": "1", "workers": "0"}, "workers must be"),
        ({"seeds": "1", "episodes_per_task": "two"}, "episodes per task"),
        ({"seeds": "1", "engine": "gpt:x"}, "unknown engine"),
        ({"seeds": "1", "structure": "nethack-v0"}, "not crafter"),
        ({"seeds": "1", "game": "chess"}, "unknown game"),
    ]:
        with pytest.raises(JobError, match=needle):
            eval_job_argv(**{"game": "crafter", **fields})


def test_optimize_job_argv_builds_the_loop_1_command(store: Store) -> None:
    argv = optimize_job_argv(game="crafter", seeds=" 42-43 ", tasks=" ", run_name="opt", db=store.path)
    assert argv == ["optimize", "crafter", "--seeds", "42-43", "--iterations", "3", "--candidates", "2",
                    "--steps", "20", "--workers", "1", "--agent-engine", "llamacpp", "--critic", "heuristic",
                    "--run-name", "opt", "--db", str(store.path)]  # fmt: skip
    stored = load_builtin("crafter-v0").derive(author="critic", description="a stored revision")
    sid = store.save_structure(stored)
    argv = optimize_job_argv(game="crafter", seeds="0", tasks="default", from_structure=sid[:8], iterations="1",
                             candidates="4", critic=f"command:{sys.executable} -c pass", db=store.path)  # fmt: skip
    assert argv[argv.index("--from") + 1] == sid[:8] and argv[argv.index("--tasks") + 1] == "default"
    assert argv[argv.index("--critic") + 1] == f"command:{sys.executable} -c pass"
    assert (argv[argv.index("--iterations") + 1], argv[argv.index("--candidates") + 1]) == ("1", "4")
    for critic in ("whole:llamacpp", "llamacpp", " "):
        argv = optimize_job_argv(game="crafter", seeds="0", critic=critic, db=store.path)
        assert argv[argv.index("--critic") + 1] == (critic.strip() or "heuristic")
    # eval's form takes a stored id the same way
    argv = eval_job_argv(game="crafter", seeds="0", structure=sid[:8], db=store.path)
    assert argv[argv.index("--structure") + 1] == sid[:8]


def test_optimize_job_argv_refuses_what_a_user_can_type_wrong(store: Store, tmp_path: Path) -> None:
    nethack = store.save_structure(load_builtin("nethack-v0"))
    for fields, needle in [
        ({"game": "chess"}, "unknown game"),
        ({"seeds": "4x-2"}, "bad seed"),
        ({"from_structure": "nethack-v0"}, "not crafter"),
        ({"from_structure": nethack[:8]}, "not crafter"),  # a stored id for another game
        ({"from_structure": "deadbeef"}, "no stored structure with id 'deadbeef'"),
        ({"from_structure": "deadbeef", "db": tmp_path / "none.db"}, "does not exist"),
        ({"from_structure": "no-such-structure"}, "no-such-structure"),
        ({"agent_engine": "gpt:x"}, "agent engine: unknown engine"),
        ({"critic": "gpt:x"}, "critic: unknown engine"),
        ({"critic": "whole:gpt:x"}, "critic: unknown engine"),
        ({"critic": "whole:"}, "whole: needs an engine"),
        ({"critic": "command:"}, "needs a program"),
        ({"critic": "command:  "}, "needs a program"),
        ({"critic": "command:'unclosed"}, "cannot split the command"),
        ({"critic": "command:automem-no-such-program --x"}, "'automem-no-such-program' not found"),
        ({"iterations": "0"}, "iterations must be a whole number of at least 1, not '0'"),
        ({"candidates": "two"}, "candidates must be"),
        ({"max_steps": ""}, "max steps must be"),
        ({"max_steps": "-3"}, "max steps must be"),
        ({"workers": "300"}, "workers must be a whole number from 1 to 256"),
        ({"workers": "²"}, "workers must be"),
    ]:
        with pytest.raises(JobError, match=re.escape(needle)):
            optimize_job_argv(**{"game": "crafter", "seeds": "0", "db": store.path, **fields})
    assert not (tmp_path / "none.db").exists()  # checking an id does not create a database


def test_cli_list_log_cancel(store: Store) -> None:
    db = ["--db", str(store.path)]
    empty = runner.invoke(app, ["jobs", "list", "--json", *db])
    assert empty.exit_code == 0 and json.loads(empty.output) == []
    log = store.path.parent / "1.log"
    log.write_text("one\ntwo\nthree\n")
    row = {"kind": "eval", "title": "t", "argv": '["eval", "crafter"]', "status": "finished", "progress_done": 1,
           "progress_total": 2, "log_path": str(log), "created_at": "x"}  # fmt: skip
    store.db["jobs"].insert(row)
    listed = runner.invoke(app, ["jobs", "list", "--json", *db])
    assert listed.exit_code == 0 and json.loads(listed.output)[0]["argv"] == ["eval", "crafter"]
    table = runner.invoke(app, ["jobs", "list", *db])
    assert table.exit_code == 0 and "finished" in table.output and "1/2" in table.output
    tail = runner.invoke(app, ["jobs", "log", "1", "--tail", "2", *db])
    assert tail.exit_code == 0 and tail.output == "two\nthree\n"
    for args, needle in [
        (["jobs", "log", "9"], "no job 9"),
        (["jobs", "cancel", "9"], "no job 9"),
        (["jobs", "cancel", "1"], "not running (it is finished)"),
        (["jobs", "cancel", "x"], "integer"),
    ]:
        result = runner.invoke(app, [*args, *db])
        assert result.exit_code == 2 and needle in result.output, result.output


def test_loop_two_job_argv_checks_names_against_the_store(store: Store, tmp_path: Path, recorded) -> None:  # type: ignore[no-untyped-def]
    recorded(store, "crafter-seed7")
    db = store.path
    argv = mine_job_argv(runs="fixture-crafter-seed7", out="ds", min_score="1.5", judge="", db=db)
    assert argv == ["mine", "--runs", "fixture-crafter-seed7", "--out", "ds", "--min-score", "1.5", "--db", str(db)]
    for fields, message in [
        ({"runs": " "}, "name at least one run"),
        ({"runs": "a,b"}, "no run named 'a', 'b'"),
        ({"out": "../x"}, "plain name"),
        ({"min_score": "-1"}, "at least 0"),
        ({"judge": "gpt:x"}, "judge: unknown engine"),
    ]:
        with pytest.raises(JobError, match=message):
            mine_job_argv(**{"runs": "fixture-crafter-seed7", "out": "ds", "db": db, **fields})

    store.db["datasets"].insert({"name": "ds", "folder": str(tmp_path)})
    argv = finetune_job_argv(dataset="ds", out="spec", lr="1e-4", max_steps="3", db=db)
    assert argv[:8] == ["finetune", "--dataset", "ds", "--out", "spec", "--base", "bundled", "--backend"]
    assert argv[argv.index("--lr") + 1] == "1e-4" and argv[argv.index("--train-steps") + 1] == "3"
    store.db["training_runs"].insert({"name": "taken"})
    for fields, message in [
        ({"dataset": "nope"}, "no dataset named 'nope'"),
        ({"out": "taken"}, "exists; choose another"),
        ({"base": str(tmp_path / "missing.gguf")}, "base: model not found"),
        ({"backend": "tpu"}, "backend must be auto, unsloth, peft"),
        ({"lora_r": "0"}, "LoRA r must be a whole number"),
        ({"epochs": "nan"}, "epochs must be at least"),
        ({"lr": "fast"}, "learning rate must be a number"),
    ]:
        with pytest.raises(JobError, match=message):
            finetune_job_argv(**{"dataset": "ds", "out": "spec", "db": db, **fields})
