"""Reading recorded trajectories: steps, model calls, memory operations and texts, as the
digest, mining, replay and metrics need them."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from automem.store.base import StoreError, Tables

#: texts fetched per query: stays under SQLite's bound-parameter limit (999 in older builds)
_TEXTS_PER_QUERY = 500

#: the columns :meth:`TrajectoryReads.recent_episodes` names its values by
_EPISODE_LIST_KEYS = ("id", "run", "game", "task", "structure", "structure_id", "engine", "model", "seed",
                      "steps", "progression", "status", "started_at")  # fmt: skip


class TrajectoryReads(Tables):
    # -- digest, replay and metrics ----------------------------------------------------------
    # Several readers return plain tuples in a documented column order rather than dicts: the
    # digest reads every step and operation of long episodes, and computes some columns
    # (lengths, comparisons) inside SQLite so whole texts never leave the database.

    def structure_yaml(self, structure_id: str | None) -> str | None:
        """A stored structure's YAML as saved, or None when no structure has this id.

        Unparsed, unlike :meth:`load_structure`: the digest reads an old run's structure as plain
        data, so a later change of the structure schema cannot make it fail."""
        row = self.db.execute("SELECT yaml FROM structures WHERE id = ?", [structure_id]).fetchone()
        return row[0] if row else None

    def structure_name(self, structure_id: str) -> str | None:
        """The name of the stored structure with exactly this id, or None."""
        row = self.db.execute("SELECT name FROM structures WHERE id = ?", [structure_id]).fetchone()
        return row[0] if row else None

    def recent_episodes(self, limit: int = 500) -> list[dict[str, Any]]:
        """Stored episodes, newest first, with their run's name (``run``) and their structure's
        name (``structure``, None when the structure is not stored) beside the episode's columns."""
        rows = self.db.execute(
            "SELECT e.id, r.name, e.game, e.task, s.name, e.structure_id, e.engine, e.model, e.seed, e.steps, "
            "e.progression, e.status, e.started_at FROM episodes e JOIN runs r ON r.id = e.run_id "
            "LEFT JOIN structures s ON s.id = e.structure_id ORDER BY e.id DESC LIMIT ?",
            [limit],
        ).fetchall()
        return [dict(zip(_EPISODE_LIST_KEYS, r, strict=True)) for r in rows]

    def episode_totals(self, run_id: int, *, only_finished: bool = True) -> list[tuple[Any, ...]]:
        """Per episode of the run, in id order, its figures summed over its steps: (id, game, task,
        progression, steps, achievements JSON, input+output tokens, model calls, memory operations,
        invalid outputs, cached tokens, input tokens). Sums are 0 for an episode without steps."""
        status = "AND e.status = 'finished'" if only_finished else ""
        return self.db.execute(
            f"""SELECT e.id, e.game, e.task, e.progression, e.steps, e.achievements,
                       COALESCE(SUM(s.input_tokens + s.output_tokens), 0), COALESCE(SUM(s.llm_calls), 0),
                       COALESCE(SUM(s.memory_ops), 0), COALESCE(SUM(s.invalid_outputs), 0),
                       COALESCE(SUM(s.cached_tokens), 0), COALESCE(SUM(s.input_tokens), 0)
                FROM episodes e LEFT JOIN steps s ON s.episode_id = e.id
                WHERE e.run_id = ? {status}
                GROUP BY e.id ORDER BY e.id""",
            [run_id],
        ).fetchall()

    def step_count(self, episode_id: int) -> int | None:
        """How many steps the episode recorded, or None when there is no such episode."""
        row = self.db.execute(
            "SELECT (SELECT COUNT(*) FROM steps WHERE episode_id = e.id) FROM episodes e WHERE e.id = ?", [episode_id]
        ).fetchone()
        return None if row is None else int(row[0])

    def step_rows_for_digest(self, episode_id: int) -> list[tuple[Any, ...]]:
        """Each step in order as (step, action, action_source, reward, progression, achievements
        JSON, invalid outputs, input+output tokens, model calls, whether the observation equals the
        previous step's). Token and call counts are 0 where not recorded."""
        return self.db.execute(
            "SELECT step, action, action_source, reward, progression, achievements, invalid_outputs, "
            "COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0), COALESCE(llm_calls, 0), "
            # compared inside SQLite: the observations themselves never leave the database
            "COALESCE(observation = LAG(observation) OVER (ORDER BY step), 0) "
            "FROM steps WHERE episode_id = ? ORDER BY step",
            [episode_id],
        ).fetchall()

    def steps_between(self, episode_id: int, first: int, last: int) -> list[tuple[Any, ...]]:
        """Steps ``first``..``last`` (inclusive) in order as (step, action, action_source, reward,
        progression, invalid outputs, observation, helper notes)."""
        return self.db.execute(
            "SELECT step, action, action_source, reward, progression, invalid_outputs, observation, helper_notes "
            "FROM steps WHERE episode_id = ? AND step BETWEEN ? AND ? ORDER BY step",
            [episode_id, first, last],
        ).fetchall()

    def progression_at(self, episode_id: int, step: int) -> float | None:
        """The progression recorded at one step, or None when the episode has no such step."""
        row = self.db.execute(
            "SELECT progression FROM steps WHERE episode_id = ? AND step = ?", [episode_id, step]
        ).fetchone()
        return float(row[0]) if row else None

    def last_observation(self, episode_id: int) -> tuple[int, str | None] | None:
        """(step, observation) of the episode's last recorded step, or None before its first."""
        row = self.db.execute(
            "SELECT step, observation FROM steps WHERE episode_id = ? ORDER BY step DESC LIMIT 1", [episode_id]
        ).fetchone()
        return (int(row[0]), row[1]) if row else None

    def memory_op_rows_for_digest(self, episode_id: int) -> list[tuple[Any, ...]]:
        """Each memory operation in the order it ran as (id, step, verb, path, args JSON, ok,
        message length, message, before text id, after text id, after text length, source).

        The message itself only for refused operations and reads over '*' (the others never need
        it), and the content after only as its length: both are measured inside SQLite."""
        return self.db.execute(
            "SELECT o.id, o.step, o.verb, o.path, o.args, o.ok, length(o.message), "
            "CASE WHEN o.ok = 0 OR o.path = '*' THEN o.message END, o.before_id, o.after_id, "
            "(SELECT length(t.text) FROM texts t WHERE t.id = o.after_id), o.source "
            "FROM memory_ops o WHERE o.episode_id = ? ORDER BY o.id",
            [episode_id],
        ).fetchall()

    def calls_between(self, episode_id: int, first: int, last: int) -> list[tuple[Any, ...]]:
        """The model calls of steps ``first``..``last`` (inclusive) in the order they ran as
        (id, step, phase, turn, parsed, valid, created_at)."""
        return self.db.execute(
            "SELECT id, step, phase, turn, parsed, valid, created_at FROM llm_calls "
            "WHERE episode_id = ? AND step BETWEEN ? AND ? ORDER BY id",
            [episode_id, first, last],
        ).fetchall()

    def memory_ops_between(self, episode_id: int, first: int, last: int) -> list[tuple[Any, ...]]:
        """The memory operations of steps ``first``..``last`` (inclusive) in the order they ran as
        (id, step, llm_call_id, phase, verb, path, ok, message, created_at)."""
        return self.db.execute(
            "SELECT id, step, llm_call_id, phase, verb, path, ok, message, created_at FROM memory_ops "
            "WHERE episode_id = ? AND step BETWEEN ? AND ? ORDER BY id",
            [episode_id, first, last],
        ).fetchall()

    def calls_of_step(self, episode_id: int, step: int) -> list[dict[str, Any]]:
        """One step's model calls (without their prompts) in the order they ran."""
        return list(self.db["llm_calls"].rows_where("episode_id = ? AND step = ?", [episode_id, step], order_by="id"))

    def prompt_chars(self, episode_id: int) -> int:
        """Characters of every model call's prompt of the episode, summed (0 without calls)."""
        # each distinct message text is measured once and weighted by how many prompts carried it
        row = self.db.execute(
            "WITH refs AS (SELECT json_extract(j.value, '$[1]') AS tid FROM llm_calls c, json_each(c.prompt_refs) j "
            "WHERE c.episode_id = ?), counted AS (SELECT tid, COUNT(*) AS n FROM refs GROUP BY tid) "
            "SELECT COALESCE(SUM(counted.n * length(t.text)), 0) FROM counted JOIN texts t ON t.id = counted.tid",
            [episode_id],
        ).fetchone()
        return int(row[0] or 0)

    def texts_by_id(self, ids: Iterable[str]) -> dict[str, str]:
        """text id -> text for the given ids; ids not stored are absent."""
        return self._texts_of(ids, "text")

    def text_lengths(self, ids: Iterable[str]) -> dict[str, int]:
        """text id -> its length in characters, without reading the texts out."""
        return self._texts_of(ids, "length(text)")

    def _texts_of(self, ids: Iterable[str], column: str) -> dict[str, Any]:
        """text id -> ``column`` (an expression over ``texts``), in chunks under SQLite's limit."""
        wanted = sorted(set(ids))
        out: dict[str, Any] = {}
        for i in range(0, len(wanted), _TEXTS_PER_QUERY):
            chunk = wanted[i : i + _TEXTS_PER_QUERY]
            marks = ",".join("?" for _ in chunk)
            out.update(self.db.execute(f"SELECT id, {column} FROM texts WHERE id IN ({marks})", chunk).fetchall())
        return out

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


def recorded_calls(path: str | Path, episode_id: int) -> list[tuple[Any, ...]]:
    """An episode's recorded model calls in order as (response, input tokens, cached tokens,
    output tokens, latency_s, finish_reason, model), read from the store file at ``path``.

    The file is opened read-only and apart from :class:`automem.store.Store`: replaying a
    recording must not migrate or write to the file it reads, which a run may be recording into."""
    try:
        conn = sqlite3.connect(f"file:{Path(path).expanduser()}?mode=ro", uri=True)
        try:
            return conn.execute(
                "SELECT response, input_tokens, cached_tokens, output_tokens, latency_s, finish_reason, model "
                "FROM llm_calls WHERE episode_id = ? ORDER BY id",
                [episode_id],
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read recorded calls from {path}: {exc}") from None


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
