"""Loop 2's tables: mined ``datasets`` and ``training_runs``."""

from __future__ import annotations

import json
from typing import Any

from automem.store.base import Tables, now


class TrainingRows(Tables):
    # -- datasets ---------------------------------------------------------------------------
    def dataset_exists(self, name: str) -> bool:
        """Whether a dataset of this name was mined (names are unique: a second one is refused)."""
        return self.db.execute("SELECT 1 FROM datasets WHERE name = ?", [name]).fetchone() is not None

    def dataset_by_name(self, name: str) -> dict[str, Any] | None:
        """The ``datasets`` row of this name (its id, folder, runs, counts), or None."""
        rows = list(self.db["datasets"].rows_where("name = ?", [name]))
        return rows[0] if rows else None

    def newest_dataset_name(self) -> str | None:
        """The name of the dataset mined last, or None before the first: what a new
        fine-tuning form proposes."""
        row = self.db.execute("SELECT name FROM datasets ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def insert_dataset(
        self,
        *,
        name: str,
        runs: list[str],
        selection: dict[str, Any],
        candidates: int,
        kept: int,
        train: int,
        val: int,
        folder: str,
    ) -> int:
        """Record a mined dataset (its examples are already in ``folder``); returns its id."""
        row = {
            "name": name,
            "runs": json.dumps(runs),
            "selection": json.dumps(selection),
            "candidates": candidates,
            "kept": kept,
            "train": train,
            "val": val,
            "folder": folder,
            "created_at": now(),
        }
        return int(self.db["datasets"].insert(row).last_pk)  # type: ignore[arg-type]

    # -- training runs ----------------------------------------------------------------------
    def training_run_exists(self, name: str) -> bool:
        """Whether a training run of this name was recorded (names are unique, as adapter folders are)."""
        return self.db.execute("SELECT 1 FROM training_runs WHERE name = ?", [name]).fetchone() is not None

    def training_run_by_name(self, name: str) -> dict[str, Any] | None:
        """The ``training_runs`` row of this name (its id, status, losses, adapter), or None."""
        rows = list(self.db["training_runs"].rows_where("name = ?", [name]))
        return rows[0] if rows else None

    def create_training_run(
        self, *, name: str, dataset_id: int, base: str, backend: str, config: dict[str, Any], adapter: str
    ) -> int:
        """Record a fine-tuning run as running, with its recipe and an empty log; returns its id."""
        row = {
            "name": name,
            "dataset_id": dataset_id,
            "base": base,
            "backend": backend,
            "config": json.dumps(config),
            "status": "running",
            "adapter": adapter,
            "log": "[]",
            "created_at": now(),
        }
        return int(self.db["training_runs"].insert(row).last_pk)  # type: ignore[arg-type]

    def update_training_run(self, run_id: int, **fields: Any) -> None:
        """Set some columns of a training run (its status, its log and steps as they come)."""
        self.db["training_runs"].update(run_id, fields)

    def finish_training_run(self, run_id: int, status: str, **fields: Any) -> None:
        """Record how a training run ended (finished, failed, interrupted) and when, with any
        other columns (losses, the error)."""
        self.update_training_run(run_id, status=status, **fields, finished_at=now())

    def training_runs_with_datasets(self) -> list[dict[str, Any]]:
        """Every training run, newest first, with its dataset's name, source runs (JSON), selection
        (JSON) and counts; those keys are None where the dataset was deleted since."""
        rows = self.db.execute(
            "SELECT t.name, t.status, t.created_at, t.backend, t.base, t.config, t.steps, t.train_loss, t.eval_loss, "
            "t.log, t.adapter, d.name, d.runs, d.selection, d.candidates, d.kept, d.train, d.val "
            "FROM training_runs t LEFT JOIN datasets d ON d.id = t.dataset_id ORDER BY t.id DESC"
        ).fetchall()
        return [dict(zip(_RECIPE_COLUMNS, row, strict=True)) for row in rows]


#: the keys of ``training_runs_with_datasets``, in the order its query selects them (the dataset's
#: columns renamed: ``name`` and ``runs`` are the training run's own words)
_RECIPE_COLUMNS = (
    "name", "status", "created_at", "backend", "base", "config", "steps", "train_loss", "eval_loss",
    "log", "adapter", "dataset", "dataset_runs", "selection", "candidates", "kept", "train", "val",
)  # fmt: skip
