"""The ``jobs`` table: background jobs, their processes, progress and outcome."""

from __future__ import annotations

from automem.store.base import Tables


class JobRows(Tables):
    pass
