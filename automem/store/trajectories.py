"""Reading recorded trajectories: steps, model calls, memory operations and texts, as the
digest, mining, replay and metrics need them."""

from __future__ import annotations

from automem.store.base import Tables


class TrajectoryReads(Tables):
    pass
