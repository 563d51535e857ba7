"""Training and evaluation loss per step of a fine-tuning run: the series the jobs screen plots and
``automem recipes NAME --losses`` prints.

The trainer's callback writes every log entry of the run into ``training_runs.log`` as it comes
(``{"step", "loss", "learning_rate", "epoch", ...}``, and ``eval_loss`` after each evaluation), so a
running job's curve grows while it trains.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from automem.errors import AutomemError
from automem.store.db import Store


class LossError(AutomemError):
    """No training run of that name."""


@dataclass(frozen=True)
class LossCurve:
    name: str
    status: str
    steps: int
    #: (step, training loss) of every logged optimizer step
    train: list[tuple[int, float]] = field(default_factory=list)
    #: (step, evaluation loss) of every evaluation on the validation split
    eval: list[tuple[int, float]] = field(default_factory=list)
    train_loss: float | None = None
    eval_loss: float | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"] = [{"step": s, "loss": v} for s, v in self.train]
        d["eval"] = [{"step": s, "eval_loss": v} for s, v in self.eval]
        return d

    def rows(self) -> list[tuple[int, float | None, float | None]]:
        """(step, training loss, evaluation loss) per step that has either: the table form."""
        train, evals = dict(self.train), dict(self.eval)
        return [(s, train.get(s), evals.get(s)) for s in sorted(set(train) | set(evals))]


def curve_from_log(name: str, row: dict[str, Any]) -> LossCurve:
    """The curve of one ``training_runs`` row."""
    try:
        log = json.loads(row.get("log") or "[]")
    except json.JSONDecodeError:
        log = []
    train: dict[int, float] = {}
    evals: dict[int, float] = {}
    for entry in log if isinstance(log, list) else []:
        if not isinstance(entry, dict) or "step" not in entry:
            continue
        step = int(entry["step"])
        # a resumed run logs its steps after the checkpoint again: the later entry wins
        if isinstance(entry.get("loss"), int | float):
            train[step] = float(entry["loss"])
        if isinstance(entry.get("eval_loss"), int | float):
            evals[step] = float(entry["eval_loss"])
    return LossCurve(
        name=name,
        status=row.get("status") or "",
        steps=int(row.get("steps") or max([*train, *evals], default=0)),
        train=sorted(train.items()),
        eval=sorted(evals.items()),
        train_loss=row.get("train_loss"),
        eval_loss=row.get("eval_loss"),
    )


def loss_curve(store: Store, name: str) -> LossCurve:
    """The losses per step of the training run ``name``."""
    row = store.training_run_by_name(name)
    if row is None:
        raise LossError(f"no training run named {name!r}")
    return curve_from_log(name, row)
