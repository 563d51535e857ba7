"""The ``jobs`` table: background jobs, their processes, progress and outcome.

Rows stay plain dicts here; ``automem.jobs.Job`` reads them. Every write commits at once: a job row
is read by other processes (the child, any front end) while this one keeps running.
"""

from __future__ import annotations

import json
from typing import Any

from automem.store.base import Tables, now

#: statuses of a job whose process may still be working
ACTIVE_STATUSES = ("queued", "running")


class JobRows(Tables):
    def insert_job(self, kind: str, title: str, argv: list[str]) -> int:
        """A new queued job row; returns its id."""
        row = {
            "kind": kind,
            "title": title,
            "argv": json.dumps(argv),
            "status": "queued",
            "progress_done": 0,
            "progress_total": 0,
            "progress_info": "",
            "created_at": now(),
        }
        return int(self.db["jobs"].insert(row).last_pk)  # type: ignore[arg-type]

    def update_job(self, job_id: int, **fields: Any) -> None:
        """Set columns of one job row (log_path, status, pid, progress_*, exit_code, error, *_at)."""
        self.db["jobs"].update(job_id, fields)

    def job_launched(self, job_id: int, pid: int) -> None:
        """The parent saw the child start: record its pid, and move on from queued only (the child
        may already have marked itself running, or even finished)."""
        self.db.execute(
            "UPDATE jobs SET pid = ?, status = CASE WHEN status = 'queued' THEN 'running' ELSE status END WHERE id = ?",
            [pid, job_id],
        )
        self.db.conn.commit()

    def job_row(self, job_id: int) -> dict[str, Any] | None:
        rows = list(self.db["jobs"].rows_where("id = ?", [job_id]))
        return rows[0] if rows else None

    def job_rows(self, *, active_only: bool = False) -> list[dict[str, Any]]:
        """Every job row oldest first, or only those still queued or running."""
        if active_only:
            marks = ", ".join("?" for _ in ACTIVE_STATUSES)
            return list(self.db["jobs"].rows_where(f"status IN ({marks})", list(ACTIVE_STATUSES), order_by="id"))
        return list(self.db["jobs"].rows_where(order_by="id"))

    def request_job_cancel(self, job_id: int) -> None:
        """Stamp the first cancel request (a later one keeps the first time)."""
        self.db.execute(
            "UPDATE jobs SET cancel_requested_at = COALESCE(cancel_requested_at, ?) WHERE id = ?", [now(), job_id]
        )
        self.db.conn.commit()

    def end_job(self, job_id: int, status: str, *, error: str | None = None, only_active: bool = False) -> None:
        """Record how a job ended; ``only_active`` leaves a row alone whose process already wrote its
        own end (the child wins a race with the parent's reconcile)."""
        sql = "UPDATE jobs SET status = ?, error = COALESCE(?, error), finished_at = ? WHERE id = ?"
        params: list[Any] = [status, error, now(), job_id]
        if only_active:
            sql += f" AND status IN ({', '.join('?' for _ in ACTIVE_STATUSES)})"
            params += list(ACTIVE_STATUSES)
        self.db.execute(sql, params)
        self.db.conn.commit()
