"""A setting declared twice must not drift: the command line's defaults against the library's."""

from __future__ import annotations

import dataclasses

import typer

from automem.cli import app
from automem.finetune.train import TrainConfig


def _defaults(command: str) -> dict[str, object]:
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return {p.name: p.default for p in click_command.params}


def test_finetune_defaults_are_the_train_configs() -> None:
    cli = _defaults("finetune")
    config = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    config["target_modules"] = ",".join(TrainConfig(dataset="d", base="b", out="o").target_modules)
    shared = sorted(set(cli) & set(config))
    assert {"max_length", "max_steps", "lr", "epochs", "lora_r", "backend", "precision"} <= set(shared)
    assert {k: cli[k] for k in shared} == {k: config[k] for k in shared}


def test_game_steps_are_steps_everywhere() -> None:
    root = typer.main.get_command(app)
    for name in ("play", "run", "eval", "optimize"):
        options = {o for p in root.commands[name].params for o in p.opts}  # type: ignore[attr-defined]
        assert "--steps" in options, name
    finetune = {o for p in root.commands["finetune"].params for o in p.opts}  # type: ignore[attr-defined]
    assert "--train-steps" in finetune and "--steps" not in finetune


def test_optimize_gate_defaults_are_the_gates() -> None:
    from automem.optimize.gate import Gate

    cli = _defaults("optimize")
    gate = {f.name: f.default for f in dataclasses.fields(Gate)}
    assert set(gate) == {"min_gain", "se_multiple", "race_fraction", "race_hope"}
    assert {k: cli[k] for k in gate} == gate
