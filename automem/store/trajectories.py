"""Reading recorded trajectories: steps, model calls, memory operations and texts, as the
digest, mining, replay and metrics need them."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NamedTuple

from automem.store.base import Tables


class TrajectoryReads(Tables):
    # -- loop 2: mining and comparing -----------------------------------------------------
    def episode_structure_id(self, episode_id: int) -> str | None:
        """The id of the structure an episode played, or None (no such episode, or none recorded)."""
        row = self.db.execute("SELECT structure_id FROM episodes WHERE id = ?", [episode_id]).fetchone()
        return row[0] if row else None

    def step_outcomes(self, episode_id: int) -> list[tuple[int, float, float, str | None]]:
        """(step, reward, progression, achievements JSON) of each step of an episode, in step order:
        what tells whether a step made progress, without its observation or frame."""
        return self.db.execute(
            "SELECT step, reward, progression, achievements FROM steps WHERE episode_id = ? ORDER BY step", [episode_id]
        ).fetchall()

    def step_observation(self, episode_id: int, step: int) -> str | None:
        """The observation an episode's agent saw at ``step``, or None where no such step was recorded."""
        row = self.db.execute(
            "SELECT observation FROM steps WHERE episode_id = ? AND step = ?", [episode_id, step]
        ).fetchone()
        return row[0] if row else None

    def memory_op_turns(self, episode_id: int) -> list[MemoryOpTurn]:
        """Each memory operation an episode's model issued, with the call that issued it, in call
        order (a call that issued several appears once for each)."""
        rows = self.db.execute(
            "SELECT c.id, c.step, c.phase, c.turn, c.response, c.valid, o.verb, o.path, o.args, o.ok, "
            "(SELECT text FROM texts WHERE id = o.before_id), o.before_id = o.after_id, o.message "
            "FROM llm_calls c JOIN memory_ops o ON o.llm_call_id = c.id "
            "WHERE c.episode_id = ? ORDER BY c.id",
            [episode_id],
        ).fetchall()
        return [MemoryOpTurn._make(row) for row in rows]

    def successful_op_paths(self, episode_id: int, verbs: Collection[str]) -> list[tuple[int, str]]:
        """(step, path) of an episode's successful memory operations of these verbs (any source), in
        no particular order: e.g. where and when each file was read."""
        marks = ",".join("?" * len(verbs))
        return self.db.execute(
            f"SELECT step, path FROM memory_ops WHERE episode_id = ? AND ok = 1 AND verb IN ({marks})",
            [episode_id, *verbs],
        ).fetchall()

    def run_memory_op_counts(self, run_id: int, episode_ids: Collection[int] | None = None) -> dict[str, int]:
        """A run's memory operations counted by source (over ``episode_ids`` only, if given):
        ``model_ops`` and ``model_ok`` (the agent's, and those that succeeded), ``helper_ops`` and
        ``helper_ok`` (the structure's helpers'); 0 where there is none."""
        only, params = _only_episodes(run_id, episode_ids)
        row = self.db.execute(
            "SELECT COALESCE(SUM(o.source = 'model'), 0), SUM(o.ok AND o.source = 'model'), "
            "COALESCE(SUM(o.ok AND o.source = 'helper'), 0), COALESCE(SUM(o.source = 'helper'), 0) "
            "FROM memory_ops o JOIN episodes e ON e.id = o.episode_id WHERE e.run_id = ?" + only,
            params,
        ).fetchone()
        return {"model_ops": row[0], "model_ok": row[1] or 0, "helper_ok": row[2], "helper_ops": row[3]}

    def run_step_totals(self, run_id: int, episode_ids: Collection[int] | None = None) -> dict[str, int]:
        """A run's recorded steps and their sums (over ``episode_ids`` only, if given): ``steps``,
        ``tokens`` (input and output), ``llm_calls`` and ``memory_ops`` (helpers' included); 0 where none."""
        only, params = _only_episodes(run_id, episode_ids)
        row = self.db.execute(
            "SELECT COUNT(*), SUM(s.input_tokens + s.output_tokens), SUM(s.llm_calls), SUM(s.memory_ops) "
            "FROM steps s JOIN episodes e ON e.id = s.episode_id WHERE e.run_id = ?" + only,
            params,
        ).fetchone()
        return {"steps": row[0] or 0, "tokens": row[1] or 0, "llm_calls": row[2] or 0, "memory_ops": row[3] or 0}

    def run_engines(self) -> list[dict[str, Any]]:
        """Every run's ``name``, ``engine`` and ``memory_engine`` specs, oldest first: which runs
        played a given model or adapter."""
        rows = self.db.execute("SELECT name, engine, memory_engine FROM runs ORDER BY id").fetchall()
        return [{"name": r[0], "engine": r[1], "memory_engine": r[2]} for r in rows]

    def newest_run_with_finished_episode(self) -> str | None:
        """The name of the newest run that finished at least one episode (an interrupted evaluation
        is still worth mining), or None."""
        row = self.db.execute(
            "SELECT r.name FROM runs r WHERE EXISTS (SELECT 1 FROM episodes e WHERE e.run_id = r.id "
            "AND e.status = 'finished') ORDER BY r.id DESC LIMIT 1"
        ).fetchone()
        return row[0] if row else None


# -- loop 2: mining and comparing (rows and helpers of the section above) --------------------
class MemoryOpTurn(NamedTuple):
    """One memory operation with the model call that issued it (``memory_op_turns``)."""

    call_id: int
    step: int
    phase: str
    turn: int
    response: str
    valid: int
    verb: str
    path: str
    args: str | None  # JSON
    ok: int
    before: str | None  # the file's content before the operation
    unchanged: int | None  # 1 where the file's content after is the same text as before (None: no file before or after)
    message: str


def _only_episodes(run_id: int, episode_ids: Collection[int] | None) -> tuple[str, list[Any]]:
    """The condition on ``e.id`` that keeps ``episode_ids`` (none when None) and the parameters
    of ``e.run_id = ?`` followed by it."""
    if episode_ids is None:
        return "", [run_id]
    return f" AND e.id IN ({','.join('?' * len(episode_ids))})", [run_id, *episode_ids]
