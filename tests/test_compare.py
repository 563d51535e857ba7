"""`automem compare --same-seeds`: runs stopped at different points compared on the games all finished."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from typer.testing import CliRunner

from automem.cli import app
from automem.finetune.compare import common_finished_episodes, quality
from automem.store import Store

BUNDLE = Path(__file__).parent / "data" / "episodes" / "crafter-seed7.json"


def _run_of_copies(store: Store, bundle: dict, run: str, seeds: list[int], memory_engine: str | None = None) -> None:
    """A run whose episodes are copies of the recorded one, under the given seeds."""
    episode = bundle["episode"]
    run_id = store.create_run(
        name=run, game=episode["game"], task=episode["task"], structure_id=episode["structure_id"],
        engine=episode["engine"], memory_engine=memory_engine, config={},
    )  # fmt: skip
    for seed in seeds:
        copied = copy.deepcopy(bundle)
        copied["episode"]["seed"] = seed
        store.import_episode(copied, run_id)


def test_same_seeds_compares_each_run_on_the_games_every_run_finished(tmp_path: Path, recorded) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "a.db")
    recorded(store, "crafter-seed7")  # the structure, and a one-episode run to check figures against
    bundle = json.loads(BUNDLE.read_text())
    episode = bundle["episode"]
    _run_of_copies(store, bundle, "a", [7, 8])
    _run_of_copies(store, bundle, "b", [8, 9, 10])
    unfinished = store.episodes(store.run_by_name("b")["id"])[-1]["id"]
    store.db["episodes"].update(unfinished, {"status": "interrupted"})  # seed 10: not a finished game

    common, chosen = common_finished_episodes(store, ["a", "b"])
    assert common == [(episode["task"], 8)]
    assert [len(chosen["a"]), len(chosen["b"])] == [1, 1]
    only_8, everything = quality(store, "a", chosen["a"]), quality(store, "a")
    assert (only_8.episodes, everything.episodes) == (1, 2)
    # one copy of the recorded episode gives the recorded run's own figures
    single = quality(store, "fixture-crafter-seed7").as_row()
    assert {**only_8.as_row(), "run": single["run"]} == single
    store.close()

    runner = CliRunner()
    shown = runner.invoke(app, ["compare", "a", "b", "--same-seeds", "--db", str(tmp_path / "a.db"), "--json"])
    assert shown.exit_code == 0, shown.output
    assert [r["episodes"] for r in json.loads(shown.output)["runs"]] == [1, 1]
    text = runner.invoke(app, ["compare", "a", "b", "--same-seeds", "--db", str(tmp_path / "a.db")])
    assert "compared on the 1 seeds every run finished" in text.output
    none = runner.invoke(
        app, ["compare", "a", "fixture-crafter-seed7", "b", "--same-seeds", "--db", str(tmp_path / "a.db")]
    )
    assert none.exit_code == 2 and "no finished task and seed in common" in none.output


def test_the_ledger_counts_a_recipe_on_the_seeds_all_its_runs_finished(tmp_path: Path, recorded) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "a.db")
    recorded(store, "crafter-seed7")
    bundle = json.loads(BUNDLE.read_text())
    episode = bundle["episode"]
    adapter = tmp_path / "models" / "spec" / "adapter"
    adapter.mkdir(parents=True)
    # the base run the dataset was mined from (seeds 7-9) and the specialist's, stopped after seed 8
    _run_of_copies(store, bundle, "base", [7, 8, 9])
    _run_of_copies(store, bundle, "played", [7, 8], memory_engine=f"llamacpp:{adapter}")
    dataset_id = store.db["datasets"].insert(
        {"name": "ds", "runs": json.dumps(["base", "gone"]), "selection": json.dumps({"config": {"min_score": 1.0}}),
         "candidates": 3, "kept": 2, "train": 1, "val": 1, "folder": str(tmp_path / "ds")},
    ).last_pk  # fmt: skip
    store.db["training_runs"].insert(
        {"name": "spec", "dataset_id": dataset_id, "base": "bundled", "backend": "peft", "status": "finished",
         "config": json.dumps({"lora_r": 8}), "adapter": str(adapter), "log": "[]", "steps": 4},
    )  # fmt: skip
    from automem.finetune.ledger import ledger

    (every,) = ledger(store)
    assert every.seeds is None and [(q.run, q.episodes) for q in every.mined + every.played] == [
        ("base", 3), ("played", 2),
    ]  # fmt: skip
    (same,) = ledger(store, same_seeds=True)  # the run "gone" was deleted: it is left out, not an error
    assert same.seeds == [(episode["task"], 7), (episode["task"], 8)]
    assert [(q.run, q.episodes) for q in same.mined + same.played] == [("base", 2), ("played", 2)]
    assert same.mined[0].as_row() == {**same.played[0].as_row(), "run": "base"}  # copies of one episode
    store.close()

    shown = CliRunner().invoke(app, ["recipes", "--same-seeds", "--db", str(tmp_path / "a.db")])
    assert shown.exit_code == 0, shown.output
    assert f"on the seeds all its runs finished: {episode['task']}: 7-8" in shown.output

    # the specialist's episodes interrupted: no game in common, so neither side is counted
    store = Store(tmp_path / "a.db")
    store.db.execute("UPDATE episodes SET status = 'interrupted' WHERE run_id = ?", [store.run_by_name("played")["id"]])
    store.db.conn.commit()
    (none,) = ledger(store, same_seeds=True)
    assert (none.seeds, none.mined, none.played) == ([], [], [])
    store.close()
