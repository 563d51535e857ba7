"""Evaluation: parallel workers, resume after kill -9, summaries, exports (real model, real games)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from automem.memory.structure import load_builtin
from automem.runs.eval import EvalConfig, EvalError, plan_eval, run_eval
from automem.runs.metrics import export, mean_se, summarize
from automem.store import Store


def test_mean_and_standard_error() -> None:
    assert mean_se([]) == (0.0, 0.0)
    assert mean_se([5.0]) == (5.0, 0.0)
    mean, se = mean_se([0.0, 100.0, 0.0, 100.0])
    assert mean == 50.0 and round(se, 3) == 28.868


def _config(name: str, **kw) -> EvalConfig:
    base = dict(
        game="minihack",
        tasks=["Room-5x5", "Corridor-R3"],
        seeds=[1, 2],
        structure=load_builtin("none"),
        engine_spec="llamacpp",
        workers=2,
        max_steps=2,
        run_name=name,
    )
    base.update(kw)
    return EvalConfig(**base)


@pytest.mark.model
def test_parallel_eval_summarises_per_task_and_exports(store: Store, tmp_path: Path) -> None:
    config = _config("ev1", parallel="thread", workers=1)  # the shared in-process engine: one thread
    plan = plan_eval(store, config)
    assert len(plan.jobs) == 4 and plan.skipped == 0
    summaries = run_eval(store, config, plan)
    assert len(summaries) == 4 and all(s.status == "finished" for s in summaries)
    groups = {g.task: g for g in summarize(store, plan.run_id)}
    assert set(groups) == {"Room-5x5", "Corridor-R3", "all"}
    assert groups["all"].episodes == 4 and groups["Room-5x5"].episodes == 2
    assert groups["Room-5x5"].llm_calls_per_step == pytest.approx(1.0)
    assert 0.0 <= groups["all"].progression_mean <= 100.0
    json_path, csv_path = export(list(groups.values()), tmp_path / "out", {"run": "ev1"})
    data = json.loads(json_path.read_text())
    assert data["run"] == "ev1" and len(data["summary"]) == 3
    assert csv_path.read_text().splitlines()[0].startswith("game,task,episodes,progression_mean,progression_se")
    # rerunning the finished evaluation plays nothing; another configuration under the name is refused
    again = plan_eval(store, config)
    assert again.jobs == [] and again.skipped == 4
    with pytest.raises(EvalError, match="another configuration"):
        plan_eval(store, _config("ev1", max_steps=3))


def test_worker_processes_share_one_database(store: Store) -> None:
    config = _config("ev2", tasks=["Room-5x5"], parallel="process", workers=2)
    plan = plan_eval(store, config)
    summaries = run_eval(store, config, plan)
    assert sorted(s.seed for s in summaries) == [1, 2]
    rows = store.db.execute("select status, steps from episodes where run_id = ?", [plan.run_id]).fetchall()
    assert len(rows) == 2 and all(r[0] == "finished" for r in rows)
    assert store.db.execute("select status from runs where id = ?", [plan.run_id]).fetchone()[0] == "finished"


def test_kill_9_loses_no_finished_episode_and_resume_completes(tmp_path: Path) -> None:
    db = tmp_path / "kill.db"
    cmd = [
        sys.executable,
        "-m",
        "automem",
        "eval",
        "minihack",
        "--tasks",
        "Room-5x5",
        "--seeds",
        "1-3",
        "--structure",
        "none",
        "--max-steps",
        "6",
        "--run-name",
        "killed",
        "--db",
        str(db),
        "--json",
    ]
    log = (tmp_path / "eval.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 240
    finished = 0
    while time.monotonic() < deadline and finished < 1:
        time.sleep(0.5)
        if db.exists():
            try:
                con = sqlite3.connect(db, timeout=5)
                finished = con.execute("select count(*) from episodes where status = 'finished'").fetchone()[0]
                con.close()
            except sqlite3.OperationalError:
                pass
        if proc.poll() is not None:
            pytest.fail(f"eval ended by itself ({proc.returncode}): {(tmp_path / 'eval.log').read_text()[-2000:]}")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()
    con = sqlite3.connect(db)
    assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
    kept = con.execute("select id, seed from episodes where status = 'finished'").fetchall()
    assert kept, "the first episode should have finished before the kill"
    con.close()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    con = sqlite3.connect(db)
    rows = con.execute("select id, seed, status from episodes order by seed").fetchall()
    assert [r[1] for r in rows] == [1, 2, 3] and all(r[2] == "finished" for r in rows)
    assert set(kept) <= {(r[0], r[1]) for r in rows}  # finished episodes kept their rows
    steps = con.execute("select episode_id, count(*), max(step) from steps group by episode_id").fetchall()
    assert all(n == m + 1 for _, n, m in steps)  # no half-written or duplicated steps
    assert con.execute("select status from runs").fetchone()[0] == "finished"


def test_ray_executor_writes_back_through_the_driver(store: Store) -> None:
    pytest.importorskip("ray")
    from automem.runs.eval import run_eval_ray

    config = _config("ev-ray", tasks=["Room-5x5"], workers=2)
    plan = plan_eval(store, config)
    summaries = run_eval_ray(store, config, plan)  # a local Ray instance, started and stopped here
    assert sorted(s.seed for s in summaries) == [1, 2] and all(s.status == "finished" for s in summaries)
    rows = store.db.execute(
        "select e.id, e.status, count(s.id) from episodes e join steps s on s.episode_id = e.id "
        "where e.run_id = ? group by e.id",
        [plan.run_id],
    ).fetchall()
    assert len(rows) == 2 and all(r[1] == "finished" and r[2] >= 1 for r in rows)
    assert {s.episode_id for s in summaries} == {r[0] for r in rows}  # ids are the driver's
    calls = store.db.execute(
        "select count(*) from llm_calls_full c join episodes e on e.id = c.episode_id "
        "where e.run_id = ? and c.prompt like '%Current observation%'",
        [plan.run_id],
    ).fetchone()[0]
    assert calls >= 2
    assert store.db.execute("select status from runs where id = ?", [plan.run_id]).fetchone()[0] == "finished"


@pytest.mark.model
def test_a_run_scoped_structure_plays_each_task_as_a_chain_that_resumes(store: Store) -> None:
    """scope "run": each task's episodes play in seed order, each from the folder the one before it
    ended with (recorded: memory_from, memory_end); a run extended later continues the chain."""
    base = load_builtin("minihack-v0")
    structure = base.derive(author="test", context={**base.context.model_dump(), "scope": "run"})
    one = dict(tasks=["Room-5x5"], structure=structure, parallel="thread", workers=1, max_steps=3)
    config = _config("chain", seeds=[1], **one)
    plan = plan_eval(store, config)
    assert [(j.chain, j.carry_after) for j in plan.jobs] == [(True, None)]
    (first,) = run_eval(store, config, plan)
    ep1 = store.episode(first.episode_id)
    end1 = json.loads(ep1["memory_end"])
    assert end1 and ep1["memory_from"] is None and ep1["memory_dir"].endswith("shared")
    # what a killed attempt could leave in the shared folder: the next episode must not see it
    (Path(ep1["memory_dir"]) / "stray.md").write_text("left by a killed attempt", encoding="utf-8")
    config = _config("chain", seeds=[1, 2, 3], **one)
    plan = plan_eval(store, config)
    assert [(j.seed, j.carry_after) for j in plan.jobs] == [(2, 1), (3, 2)] and plan.skipped == 1
    # each episode of a chain is reported as it ends, not when the whole chain is done
    reported: list[tuple[int, int]] = []
    summaries = run_eval(
        store, config, plan, on_done=lambda job, s, e: reported.append((job.seed, len(store.episodes(plan.run_id))))
    )
    assert [s.status for s in summaries] == ["finished", "finished"]
    assert reported == [(2, 2), (3, 3)]  # seed 2 reported before seed 3's episode began
    ep2, ep3 = (store.episode(s.episode_id) for s in sorted(summaries, key=lambda s: s.seed))
    start2 = json.loads(ep2["memory_seed"])
    assert ep2["memory_from"] == ep1["id"] and end1.items() <= start2.items() and "stray.md" not in start2
    assert (
        ep3["memory_from"] == ep2["id"]
        and json.loads(ep2["memory_end"]).items() <= json.loads(ep3["memory_seed"]).items()
    )
