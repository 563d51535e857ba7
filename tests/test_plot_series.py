"""The series the plots draw and the CLI prints as text: loop 1's progression per iteration, a
training run's losses per step, an episode's memory size per file per step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from automem.cli import app
from automem.finetune.losses import LossError, loss_curve
from automem.jobs.plots import job_series
from automem.jobs.supervisor import Job
from automem.memory.structure import load_builtin
from automem.optimize.progression import (
    ProgressionError,
    optimization_of_structure,
    progression,
    progression_table,
)
from automem.runs.replay import EpisodeReplay
from automem.store.db import Store

runner = CliRunner()
CRAFTER = load_builtin("crafter-v0")


def optimization_fixture(store: Store, name: str = "opt-a") -> dict[str, str]:
    """An optimization of two iterations: iteration 0 accepts a and rejects b (retried as c, raced
    out), iteration 1 revises a, rejects d, and an invalid proposal has no score."""
    store.save_structure(CRAFTER)
    ids = {}
    for key in "abcd":
        ids[key] = store.save_structure(CRAFTER.derive(author="critic", description=f"revision {key}"))
    opt = store.insert_optimization(
        {"name": name, "game": "crafter", "root_structure_id": CRAFTER.id, "critic": "heuristic",
         "agent_engine": "llamacpp", "config": "{}", "status": "finished", "created_at": "2026-01-01T10:00:00"}
    )  # fmt: skip
    rows = [
        (0, 0, CRAFTER.id, ids["a"], "accepted", 5.0, 1.0, 9.0, 1.5, None),
        (0, 1, CRAFTER.id, ids["b"], "rejected", 5.0, 1.0, 4.0, 2.0, None),
        (0, 2, CRAFTER.id, ids["c"], "raced_out", 5.0, 1.0, 3.0, 0.5, 1),
        (1, 0, ids["a"], ids["d"], "rejected", 9.0, 1.5, 8.0, 1.0, None),
        (1, 1, ids["a"], None, "invalid", 9.0, 1.5, None, None, None),
    ]
    for iteration, candidate, parent, child, status, pm, pse, cm, cse, retry_of in rows:
        store.insert_iteration(
            {"optimization_id": opt, "iteration": iteration, "candidate": candidate, "parent_id": parent,
             "candidate_id": child, "critic": "heuristic", "status": status, "reason": f"{status} because",
             "changes": "[]", "parent_mean": pm, "parent_se": pse, "candidate_mean": cm, "candidate_se": cse,
             "retry_of": retry_of}
        )  # fmt: skip
    return ids


def test_progression_per_iteration(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    with pytest.raises(ProgressionError, match="no optimization stored yet"):
        progression(store)
    ids = optimization_fixture(store)
    p = progression(store)  # the newest, by default
    assert p.optimization == "opt-a" and p.root_id == CRAFTER.id and p.status == "finished"
    first, second = p.iterations
    assert (first.parent_id, first.parent_mean, first.parent_se) == (CRAFTER.id, 5.0, 1.0)
    assert (first.best_id, first.best_mean, first.accepted, first.rejected) == (ids["a"], 9.0, 1, 2)
    assert (second.parent_id, second.parent_mean, second.best_id, second.best_mean) == (ids["a"], 9.0, ids["a"], 9.0)
    assert [(c.iteration, c.status, c.mean) for c in p.scored] == [
        (0, "accepted", 9.0), (0, "rejected", 4.0), (0, "raced_out", 3.0), (1, "rejected", 8.0),
    ]  # fmt: skip
    assert p.candidates[2].retry_of == 1 and p.candidates[-1].status == "invalid" and p.candidates[-1].mean is None
    json.dumps(p.as_dict())  # the --json form
    table = progression_table(p)
    assert table[0] == {
        "iter.": "0", "cand.": "0", "structure": ids["a"][:8], "status": "accepted",
        "parent": "5.00±1.00", "candidate": "9.00±1.50", "gain": "+4.00", "best kept": "9.00±1.50",
    }  # fmt: skip
    assert table[2]["cand."] == "2 (retry 1)" and table[-1]["gain"] == "-"
    assert optimization_of_structure(store, ids["d"]) == "opt-a"
    assert optimization_of_structure(store, CRAFTER.id) == "opt-a"  # the root
    assert optimization_of_structure(store, "f" * 16) is None
    with pytest.raises(ProgressionError, match="no optimization named 'nope'"):
        progression(store, "nope")


def _training_run(store: Store, name: str = "tr1") -> int:
    dataset = store.insert_dataset(
        name="ds", runs=["r"], selection={}, candidates=3, kept=2, train=2, val=1, folder=str(store.path.parent)
    )
    run_id = store.create_training_run(
        name=name, dataset_id=dataset, base="bundled", backend="peft", config={"lora_r": 8}, adapter="x"
    )
    log = [
        {"step": 1, "loss": 2.5, "learning_rate": 0.0002, "epoch": 0.5},
        {"step": 2, "loss": 2.0, "epoch": 1.0},
        {"step": 2, "eval_loss": 2.2, "epoch": 1.0},
        {"step": 3, "loss": 1.9},
        {"step": 3, "loss": 1.7},  # a resumed run logged step 3 again: the later entry counts
        {"step": 3, "train_loss": 2.0, "train_runtime": 1.5},  # the trainer's summary: not a step's loss
    ]
    store.update_training_run(run_id, log=json.dumps(log), steps=3)
    return run_id


def test_loss_curve_per_step(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    run_id = _training_run(store)
    curve = loss_curve(store, "tr1")
    assert curve.status == "running" and curve.steps == 3
    assert curve.train == [(1, 2.5), (2, 2.0), (3, 1.7)] and curve.eval == [(2, 2.2)]
    assert curve.rows() == [(1, 2.5, None), (2, 2.0, 2.2), (3, 1.7, None)]
    store.finish_training_run(run_id, "finished", train_loss=2.0, eval_loss=2.2)
    d = loss_curve(store, "tr1").as_dict()
    assert d["status"] == "finished" and d["train_loss"] == 2.0 and d["eval"] == [{"step": 2, "eval_loss": 2.2}]
    with pytest.raises(LossError):
        loss_curve(store, "nope")


def test_memory_sizes_match_the_rebuilt_folder(store, recorded) -> None:  # type: ignore[no-untyped-def]
    episode = recorded(store, "crafter-seed7")
    replay = EpisodeReplay(store, episode)
    sizes = replay.memory_sizes()
    assert sizes.steps == list(range(len(replay)))
    assert set(sizes.files) >= set(replay.memory(len(replay) - 1))
    for index in range(len(replay)):
        folder = replay.memory(index)
        assert {p: v[index] for p, v in sizes.files.items()} == {p: len(folder.get(p, "")) for p in sizes.files}
    changes = sizes.changes()
    assert changes[0][0] == 0 and len(changes) < len(replay)  # only the steps where a size changed
    assert [step for step, _ in changes[1:]] == [7, 10]  # the two writes of this episode
    json.dumps(sizes.as_dict())


def _job(argv: list[str], kind: str) -> Job:
    return Job(id=1, kind=kind, title="t", argv=argv, status="running", pid=None, progress_done=0, progress_total=0,
               progress_info="", log_path=None, exit_code=None, error=None, created_at="2026-01-01T09:00:00",
               started_at="2026-01-01T09:00:00", finished_at=None)  # fmt: skip


def test_job_series(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    assert "not recorded yet" in job_series(store, _job(["finetune", "--dataset", "ds", "--out", "tr1"], "finetune"))
    _training_run(store)
    curve = job_series(store, _job(["finetune", "--dataset", "ds", "--out", "tr1"], "finetune"))
    assert curve.name == "tr1" and curve.train[-1] == (3, 1.7)
    assert "not recorded yet" in job_series(store, _job(["optimize", "crafter"], "optimize"))
    optimization_fixture(store)
    assert job_series(store, _job(["optimize", "crafter", "--run-name", "opt-a"], "optimize")).optimization == "opt-a"
    # no --run-name: the optimization the job created once it started
    assert job_series(store, _job(["optimize", "crafter"], "optimize")).optimization == "opt-a"
    assert "has no plot" in job_series(store, _job(["eval", "crafter"], "eval"))


def test_cli_text_forms(tmp_path: Path, recorded) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "a.db"
    store = Store(db)
    optimization_fixture(store)
    _training_run(store)
    episode = recorded(store, "crafter-seed7")
    store.close()
    db_args = ["--db", str(db)]

    shown = runner.invoke(app, ["structures", "progression", *db_args])
    assert shown.exit_code == 0, shown.output
    assert "opt-a" in shown.output and "accepted" in shown.output and "9.00±1.50" in shown.output
    as_json = json.loads(runner.invoke(app, ["structures", "progression", "opt-a", "--json", *db_args]).output)
    assert [it["best_mean"] for it in as_json["iterations"]] == [9.0, 9.0]
    missing = runner.invoke(app, ["structures", "progression", "nope", *db_args])
    assert missing.exit_code == 2 and "no optimization named" in missing.output

    losses = runner.invoke(app, ["recipes", "tr1", "--losses", *db_args])
    assert losses.exit_code == 0, losses.output
    assert "loss per step" in losses.output and "1.7000" in losses.output and "2.2000" in losses.output
    (curve,) = json.loads(runner.invoke(app, ["recipes", "--losses", "--json", *db_args]).output)
    assert curve["train"][0] == {"step": 1, "loss": 2.5}

    sizes = runner.invoke(app, ["replay", str(episode), "--memory-sizes", *db_args])
    assert sizes.exit_code == 0, sizes.output
    assert "memory chars per file" in sizes.output and "actions.md" in sizes.output
    data = json.loads(runner.invoke(app, ["replay", str(episode), "--memory-sizes", "--json", *db_args]).output)
    assert data["episode_id"] == episode and len(data["steps"]) == len(data["files"]["actions.md"])
    bad = runner.invoke(app, ["replay", "--memory-sizes", *db_args])
    assert bad.exit_code == 2 and "needs one episode id" in bad.output
