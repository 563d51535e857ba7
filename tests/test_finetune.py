"""Loop 2 end to end on the CPU: mine a recorded run, LoRA-train SmolLM2-135M for a step with peft,
load the adapter as the memory engine, play in two-model mode, compare."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from automem.cli import app
from automem.finetune.train import TrainingError, choose_backend, resolve_precision

RUN = "fixture-crafter-seed7"


def test_backend_choice_on_a_cpu_machine():
    assert choose_backend("peft") == "peft"
    assert choose_backend("auto") == "peft"  # no CUDA here: Unsloth is never imported
    with pytest.raises(TrainingError, match="CUDA"):
        choose_backend("unsloth")
    with pytest.raises(TrainingError, match="auto, unsloth or peft"):
        choose_backend("tpu")


def test_precision_on_a_cpu_is_fp32_unless_asked():
    # bf16 autocast measured slower than fp32 on this kind of CPU (docs/finetune.md)
    assert resolve_precision("auto", cuda=False) == "fp32"
    assert resolve_precision("bf16", cuda=False) == "bf16"
    with pytest.raises(TrainingError, match="auto, bf16, fp32"):
        resolve_precision("fp8", cuda=False)


@pytest.mark.model
def test_mine_finetune_play_with_the_specialist_and_compare(tmp_path, recorded):
    from automem.store import Store

    db = tmp_path / "a.db"
    store = Store(db)
    recorded(store, "crafter-seed7")
    store.close()
    runner = CliRunner()
    mined = runner.invoke(app, ["mine", "--runs", RUN, "--out", "mem1", "--min-score", "1", "--db", str(db)])
    assert mined.exit_code == 0, mined.output
    trained = runner.invoke(
        app, ["finetune", "--dataset", "mem1", "--out", "spec1", "--max-steps", "1", "--db", str(db)]
    )
    assert trained.exit_code == 0, trained.output
    adapter = tmp_path / "models" / "spec1" / "adapter"
    assert (adapter / "adapter_config.json").is_file() and json.loads((adapter / "automem.json").read_text())["base"]
    # trained on the bundled GGUF, so the same adapter is also written as a GGUF LoRA for llama.cpp
    assert json.loads((adapter / "automem.json").read_text())["gguf_lora"] == str(adapter / "adapter.gguf")
    assert "llamacpp:" in trained.output and (adapter / "adapter.gguf").stat().st_size > 0
    store = Store(db)
    row = store.db["training_runs"].get(1)
    assert row["status"] == "finished" and row["backend"] == "peft" and row["steps"] == 1 and row["train_loss"] > 0
    assert json.loads(row["log"])[0]["loss"] > 0 and json.loads(row["config"])["lora_r"] == 8
    store.close()
    again = runner.invoke(app, ["finetune", "--dataset", "mem1", "--out", "spec1", "--db", str(db)])
    assert again.exit_code == 2 and "--resume" in again.output
    missing = runner.invoke(app, ["finetune", "--dataset", "nope", "--out", "x", "--db", str(db)])
    assert missing.exit_code == 2 and "no dataset named 'nope'" in missing.output
    bad = runner.invoke(app, ["finetune", "--dataset", "mem1", "--out", "x", "--precision", "fp8", "--db", str(db)])
    assert bad.exit_code == 2 and "--precision must be one of" in bad.output
    store = Store(db)
    assert store.db["training_runs"].count == 1  # nothing recorded for the refused one
    # on a CPU the trainer recomputed no activations (checkpointing costs a forward pass per step)
    assert json.loads(store.db["training_runs"].get(1)["config"])["gradient_checkpointing"] is None
    store.close()
    played = runner.invoke(
        app,
        ["run", "crafter", "--seed", "7", "--steps", "2", "--engine", "llamacpp", "--memory-engine",
         f"transformers:{adapter}", "--run-name", "specialist", "--db", str(db), "--quiet"],
    )  # fmt: skip
    assert played.exit_code == 0, played.output
    store = Store(db)
    engines = {r[0] for r in store.db.execute("SELECT DISTINCT c.model FROM llm_calls c JOIN episodes e "
                                              "ON e.id = c.episode_id JOIN runs r ON r.id = e.run_id "
                                              "WHERE r.name = 'specialist'")}  # fmt: skip
    store.close()
    assert any(m.endswith("+adapter") for m in engines) and len(engines) == 2, engines  # specialist + base
    compared = runner.invoke(app, ["compare", RUN, "specialist", "--db", str(db), "--json"])
    assert compared.exit_code == 0, compared.output
    report = json.loads(compared.output)
    assert [r["run"] for r in report["runs"]] == [RUN, "specialist"]
    # the specialist played seed 7, which its dataset was mined from: compare says so, loudly
    assert report["warning"].startswith("NOT HELD OUT") and "specialist: 1" in report["warning"]
    held = runner.invoke(app, ["compare", RUN, "specialist", "--db", str(db), "--held-out", "--json"])
    assert [r["episodes"] for r in json.loads(held.output)["runs"]] == [0, 0]
    # the same specialist on llama.cpp (its GGUF LoRA, grammar-constrained), then the recipe ledger
    played = runner.invoke(
        app,
        ["run", "crafter", "--seed", "7", "--steps", "2", "--memory-engine", f"llamacpp:{adapter}",
         "--run-name", "specialist-cpp", "--db", str(db), "--quiet"],
    )  # fmt: skip
    assert played.exit_code == 0, played.output
    ledger = runner.invoke(app, ["recipes", "--db", str(db), "--json"])
    assert ledger.exit_code == 0, ledger.output
    (recipe,) = json.loads(ledger.output)
    assert recipe["name"] == "spec1" and recipe["dataset"] == "mem1" and recipe["config"]["backend"] == "peft"
    assert [q["run"] for q in recipe["mined"]] == [RUN]
    assert [q["run"] for q in recipe["played"]] == ["specialist", "specialist-cpp"]
    # both played seed 7, the seed the dataset was mined from
    assert recipe["not_held_out"] == {"specialist": 1, "specialist-cpp": 1}
    shown = runner.invoke(app, ["recipes", "spec1", "--db", str(db)])
    assert shown.exit_code == 0 and "specialist-cpp" in shown.output, shown.output
    assert "NOT HELD OUT: specialist-cpp played 1 task/seed pairs that dataset mem1" in " ".join(shown.output.split())
    assert runner.invoke(app, ["recipes", "nope", "--db", str(db)]).exit_code == 2
    # an evaluation about to play the adapter on seeds its dataset saw is warned about (CLI and jobs screen)
    from automem.jobs import held_out_warnings

    store = Store(db)
    argv = ["eval", "crafter", "--seeds", "6-8", "--engine", f"llamacpp:{adapter}"]
    (warning,) = held_out_warnings(store, argv)
    assert warning.startswith("NOT HELD OUT") and "dataset mem1, mined from seeds 7" in warning
    assert held_out_warnings(store, ["eval", "crafter", "--seeds", "42-51", "--engine", f"llamacpp:{adapter}"]) == []
    store.close()
