"""The ``pipelines`` and ``pipeline_stages`` tables: the paper's protocol run as one resumable job."""

from __future__ import annotations

import json
from typing import Any

from automem.store.base import Tables, now


class PipelineRows(Tables):
    def pipeline_by_name(self, name: str) -> dict[str, Any] | None:
        rows = list(self.db["pipelines"].rows_where("name = ?", [name]))
        return rows[0] if rows else None

    def insert_pipeline(self, name: str, spec: dict[str, Any]) -> int:
        row = {"name": name, "spec": json.dumps(spec), "status": "running", "created_at": now()}
        return int(self.db["pipelines"].insert(row).last_pk)  # type: ignore[arg-type]

    def set_pipeline_status(
        self, pipeline_id: int, status: str, *, report_path: str | None = None, spec: dict[str, Any] | None = None
    ) -> None:
        fields: dict[str, Any] = {"status": status}
        if spec is not None:
            fields["spec"] = json.dumps(spec)
        if status != "running":
            fields["finished_at"] = now()
        if report_path is not None:
            fields["report_path"] = report_path
        self.db["pipelines"].update(pipeline_id, fields)

    def pipeline_stages(self, pipeline_id: int) -> dict[str, dict[str, Any]]:
        """Stage name -> its row, with ``output`` decoded."""
        rows = self.db["pipeline_stages"].rows_where("pipeline_id = ?", [pipeline_id], order_by="id")
        return {r["stage"]: {**r, "output": json.loads(r["output"] or "{}")} for r in rows}

    def start_pipeline_stage(self, pipeline_id: int, stage: str, job_id: int | None) -> None:
        """A stage (re)started: one row per stage, a rerun takes over the row of an unfinished one."""
        fields = {"job_id": job_id, "status": "running", "output": "{}", "started_at": now(), "finished_at": None}
        rows = list(self.db["pipeline_stages"].rows_where("pipeline_id = ? AND stage = ?", [pipeline_id, stage]))
        if rows:
            self.db["pipeline_stages"].update(rows[0]["id"], fields)
        else:
            self.db["pipeline_stages"].insert({"pipeline_id": pipeline_id, "stage": stage, **fields})

    def finish_pipeline_stage(self, pipeline_id: int, stage: str, status: str, output: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE pipeline_stages SET status = ?, output = ?, finished_at = ? WHERE pipeline_id = ? AND stage = ?",
            [status, json.dumps(output), now(), pipeline_id, stage],
        )
        self.db.conn.commit()
