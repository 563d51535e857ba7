"""Loop 1's tables: ``optimizations`` and their ``optimize_iterations`` (one row per candidate)."""

from __future__ import annotations

from typing import Any

from automem.store.base import Tables, now


class OptimizationRows(Tables):
    def optimization_by_name(self, name: str) -> dict[str, Any] | None:
        rows = list(self.db["optimizations"].rows_where("name = ?", [name], limit=1))
        return rows[0] if rows else None

    def optimizations(self) -> list[dict[str, Any]]:
        """Every optimization row, oldest first."""
        return list(self.db["optimizations"].rows_where(order_by="id"))

    def optimizations_of_structure(self, structure_id: str) -> list[str]:
        """Names of the optimizations a structure took part in (as root, parent or candidate), newest first."""
        rows = self.db.execute(
            "SELECT o.name FROM optimizations o WHERE o.root_structure_id = ? OR EXISTS (SELECT 1 FROM "
            "optimize_iterations i WHERE i.optimization_id = o.id AND (i.candidate_id = ? OR i.parent_id = ?)) "
            "ORDER BY o.id DESC",
            [structure_id, structure_id, structure_id],
        ).fetchall()
        return [r[0] for r in rows]

    def insert_optimization(self, row: dict[str, Any]) -> int:
        return int(self.db["optimizations"].insert(row).last_pk)  # type: ignore[arg-type]

    def set_optimization_status(self, opt_id: int, status: str, *, finished: bool = False) -> None:
        fields: dict[str, Any] = {"status": status}
        if finished:
            fields["finished_at"] = now()
        self.db["optimizations"].update(opt_id, fields)

    def iteration_rows(self, opt_id: int, iteration: int | None = None) -> list[dict[str, Any]]:
        """An optimization's candidate rows (of one iteration if given) in iteration, candidate order."""
        where, params = "optimization_id = ?", [opt_id]
        if iteration is not None:
            where, params = f"{where} AND iteration = ?", [opt_id, iteration]
        return list(self.db["optimize_iterations"].rows_where(where, params, order_by="iteration, candidate"))

    def insert_iteration(self, row: dict[str, Any]) -> int:
        return int(self.db["optimize_iterations"].insert(row).last_pk)  # type: ignore[arg-type]

    def update_iteration(self, row_id: int, fields: dict[str, Any]) -> None:
        self.db["optimize_iterations"].update(row_id, fields)

    def accepted_candidates(self, optimization: str) -> set[str]:
        """Ids of the structures the named optimization accepted."""
        rows = self.db.execute(
            "SELECT candidate_id FROM optimize_iterations i JOIN optimizations o ON o.id = i.optimization_id "
            "WHERE o.name = ? AND i.status = 'accepted'",
            [optimization],
        ).fetchall()
        return {r[0] for r in rows}

    def candidate_decisions(self) -> dict[str, dict[str, Any]]:
        """Structure id -> loop 1's latest row on it as a candidate (a judged one over a pending one),
        with its optimization's name as ``optimization``."""
        rows = self.db.query(
            "SELECT i.*, o.name AS optimization FROM optimize_iterations i "
            "LEFT JOIN optimizations o ON o.id = i.optimization_id "
            "WHERE i.candidate_id IS NOT NULL ORDER BY i.status != 'pending', i.id"
        )
        return {row["candidate_id"]: row for row in rows}

    def episode_scores(self, run_id: int) -> list[tuple[str, int, float, int, int]]:
        """(task, seed, progression, steps, tokens) of each finished episode of a run, by task and
        seed: what loop 1 scores a candidate by."""
        rows = self.db.execute(
            "SELECT e.task, e.seed, e.progression, e.steps, "
            "COALESCE((SELECT SUM(s.input_tokens + s.output_tokens) FROM steps s WHERE s.episode_id = e.id), 0) "
            "FROM episodes e WHERE e.run_id = ? AND e.status = 'finished' ORDER BY e.task, e.seed",
            [run_id],
        ).fetchall()
        return [(r[0], int(r[1]), float(r[2] or 0.0), int(r[3] or 0), int(r[4])) for r in rows]
