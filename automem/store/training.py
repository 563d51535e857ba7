"""Loop 2's tables: mined ``datasets`` and ``training_runs``."""

from __future__ import annotations

from automem.store.base import Tables


class TrainingRows(Tables):
    pass
