"""Loop 1's tables: ``optimizations`` and their ``optimize_iterations``."""

from __future__ import annotations

from automem.store.base import Tables


class OptimizationRows(Tables):
    pass
