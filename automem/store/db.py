"""The SQLite trajectory store: one file, WAL mode, every row written as it happens.

A step is written in one transaction together with its model calls and memory operations, so an
interrupted episode leaves whole steps only and a replay can rebuild any step exactly.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from automem.memory.structure import Structure
from automem.procs import process_alive
from automem.records import CallRecord, OpRecord, StepRecord
from automem.store.base import StoreError, StructureNotFound, now
from automem.store.jobs import JobRows
from automem.store.migrations import migrations
from automem.store.optimizations import OptimizationRows
from automem.store.pipelines import PipelineRows
from automem.store.training import TrainingRows
from automem.store.trajectories import TrajectoryReads

DB_ENV = "AUTOMEM_DB"


def default_db_path() -> Path:
    env = os.environ.get(DB_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path("automem") / "automem.db"


def unified_diff(before: str | None, after: str | None, path: str) -> str:
    if before == after:
        return ""
    return "".join(
        difflib.unified_diff(
            (before or "").splitlines(keepends=True),
            (after or "").splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
            n=1,
        )
    )


class Store(TrajectoryReads, JobRows, OptimizationRows, TrainingRows, PipelineRows):
    """The database file. Each table group's queries live in their own module as a mixin
    (jobs, optimizations, training, trajectories, pipelines); this one holds structures, runs and the
    step writes. No module outside ``automem/store`` speaks SQL (tests/test_sql_boundary.py)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # check_same_thread=False: the TUI hands the store to a worker thread; we never use
            # one connection from two threads at once
            conn = sqlite3.connect(str(self.path), check_same_thread=False)
            self.db = Database(conn)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            # checkpoints (copying the WAL back with an fsync) dominated step writes at the default
            # 1,000 pages; 16,000 pages (64 MB of WAL) makes them rare
            self.db.execute("PRAGMA wal_autocheckpoint=16000")
            self.db.execute("PRAGMA busy_timeout=10000")
            self.db.execute("PRAGMA foreign_keys=ON")
            migrations.apply(self.db)
            self._text_ids: dict[str, str] = {}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- structures and runs --------------------------------------------------------------
    def save_structure(self, structure: Structure) -> str:
        sid = structure.id
        if not self.db["structures"].count_where("id = ?", [sid]):
            self.db["structures"].insert(
                {
                    "id": sid,
                    "name": structure.name,
                    "game": structure.game,
                    "parent": structure.parent,
                    "author": structure.author,
                    "yaml": structure.to_yaml(),
                    "created_at": now(),
                }
            )
        return sid

    def structures(self) -> list[dict[str, Any]]:
        """Every stored structure row, oldest first (lineage reads top-down)."""
        return list(self.db["structures"].rows_where(order_by="created_at, id"))

    def load_structure(self, id_or_prefix: str) -> Structure:
        """The stored structure whose id is or starts with ``id_or_prefix`` (at least 4 hex digits)."""
        from automem.memory.structure import structure_from_yaml

        prefix = id_or_prefix.strip().lower()
        if len(prefix) < 4 or any(c not in "0123456789abcdef" for c in prefix):
            raise StructureNotFound(f"not a structure id or prefix (4+ hex digits): {id_or_prefix!r}")
        # substr, not LIKE: no wildcard escaping, and the prefix is plain hex anyway
        rows = self.db.execute(
            "SELECT id, yaml FROM structures WHERE substr(id, 1, ?) = ? ORDER BY id", [len(prefix), prefix]
        ).fetchall()
        if not rows:
            raise StructureNotFound(f"no stored structure with id {id_or_prefix!r}")
        if len(rows) > 1:
            ids = ", ".join(r[0] for r in rows[:5])
            raise StructureNotFound(f"structure id prefix {id_or_prefix!r} is ambiguous: {ids}")
        return structure_from_yaml(rows[0][1], source=f"store:{rows[0][0]}")

    def structure_scores(self) -> dict[str, tuple[int, float]]:
        """structure id -> (finished episodes, their mean progression); ids without one are absent."""
        rows = self.db.execute(
            "SELECT structure_id, COUNT(*), AVG(progression) FROM episodes "
            "WHERE status = 'finished' AND structure_id IS NOT NULL GROUP BY structure_id"
        ).fetchall()
        return {sid: (int(n), float(mean or 0.0)) for sid, n, mean in rows}

    def create_run(
        self,
        *,
        name: str,
        game: str,
        task: str,
        structure_id: str,
        engine: str,
        memory_engine: str | None,
        config: dict[str, Any],
    ) -> int:
        table = self.db["runs"]
        row = {
            "name": name,
            "game": game,
            "task": task,
            "structure_id": structure_id,
            "engine": engine,
            "memory_engine": memory_engine,
            "config": json.dumps(config, sort_keys=True),
            "status": "running",
            "created_at": now(),
        }
        return int(table.insert(row).last_pk)  # type: ignore[arg-type]

    def finish_run(self, run_id: int, status: str) -> None:
        self.db["runs"].update(run_id, {"status": status, "finished_at": now()})

    # -- episodes and steps ---------------------------------------------------------------
    def start_episode(
        self,
        *,
        run_id: int,
        game: str,
        task: str,
        seed: int,
        structure_id: str,
        engine: str,
        model: str,
        memory_dir: str,
        memory_seed: dict[str, str],
        memory_from: int | None = None,
    ) -> int:
        row = {
            "run_id": run_id,
            "game": game,
            "task": task,
            "seed": seed,
            "structure_id": structure_id,
            "engine": engine,
            "model": model,
            "status": "running",
            "steps": 0,
            "total_reward": 0.0,
            "progression": 0.0,
            "achievements": "[]",
            "memory_dir": memory_dir,
            "memory_seed": json.dumps(memory_seed),
            "memory_from": memory_from,
            "started_at": now(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        return int(self.db["episodes"].insert(row).last_pk)  # type: ignore[arg-type]

    def mark_orphaned_episodes(self) -> list[int]:
        """Episodes recorded as running on this host whose process is gone (killed, or crashed in
        native code) become ``interrupted``, so they show as such and a resumed run replays them."""
        host, orphans = socket.gethostname(), []
        for row in self.db.execute(
            "SELECT id, pid FROM episodes WHERE status = 'running' AND host = ? AND pid IS NOT NULL", [host]
        ).fetchall():
            if not process_alive(int(row[1])):
                orphans.append(int(row[0]))
        for episode_id in orphans:
            self.db["episodes"].update(
                episode_id,
                {"status": "interrupted", "ended_reason": "orphaned",
                 "error": "its process ended without recording an end (killed or crashed)", "finished_at": now()},
            )  # fmt: skip
        return orphans

    @staticmethod
    def pending_migrations(path: str | Path) -> list[str]:
        """Migrations a database file still lacks (applied when it is next opened); [] when new."""
        path = Path(path).expanduser()
        if not path.is_file():
            return []
        db = Database(str(path))
        try:
            return [m.name for m in migrations.pending(db)]
        finally:
            db.close()

    def text_id(self, text: str | None) -> str | None:
        """Store ``text`` once (content-addressed) and return its id; call inside a transaction."""
        if text is None:
            return None
        # the same string objects recur across a step's calls: a dict lookup reuses Python's cached
        # str hash instead of running SHA-1 over kilobytes again
        tid = self._text_ids.get(text)
        if tid is None:
            tid = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
            self.db.conn.execute("INSERT OR IGNORE INTO texts (id, text) VALUES (?, ?)", (tid, text))
            if len(self._text_ids) > 20_000:
                self._text_ids.clear()
            self._text_ids[text] = tid
        return tid

    def record_step(self, episode_id: int, rec: StepRecord) -> None:
        """Write a step, its model calls and memory operations in one transaction.

        Plain prepared statements rather than sqlite-utils' insert(): this runs once per game step
        and the generic path (introspecting columns per call) cost more than the rest of the harness.
        """
        conn = self.db.conn
        try:
            with self.db.atomic():
                self._write_calls_ops(episode_id, rec.step, rec.calls, rec.ops)
                conn.execute(_INSERT_STEP, (
                    episode_id, rec.step, rec.observation, rec.helper_notes,
                    json.dumps(rec.frame, separators=(",", ":")), rec.action, rec.action_source, rec.reward,
                    int(rec.done), rec.progression, json.dumps(rec.achievements), rec.invalid_outputs,
                    len(rec.calls), len(rec.ops),
                    sum(c.input_tokens for c in rec.calls), sum(c.cached_tokens for c in rec.calls),
                    sum(c.output_tokens for c in rec.calls), rec.model_s, rec.game_s, rec.harness_s, now(),
                ))  # fmt: skip
                conn.execute(
                    "UPDATE episodes SET steps = ?, progression = ?, achievements = ?, "
                    "total_reward = total_reward + ? WHERE id = ?",
                    (rec.step + 1, rec.progression, json.dumps(rec.achievements), rec.reward, episode_id),
                )
        except BaseException:
            # ids remembered inside the rolled-back transaction may not exist
            self._text_ids.clear()
            raise

    def record_partial(self, episode_id: int, step: int, calls: list[CallRecord], ops: list[OpRecord]) -> None:
        """Keep what an unfinished step already did (model calls, memory changes) when an episode
        stops mid-step: the folder on disk changed, so the record must say how. No ``steps`` row."""
        if not calls and not ops:
            return
        try:
            with self.db.atomic():
                self._write_calls_ops(episode_id, step, calls, ops)
        except BaseException:
            self._text_ids.clear()
            raise

    def _write_calls_ops(self, episode_id: int, step: int, calls: list[CallRecord], ops: list[OpRecord]) -> None:
        conn = self.db.conn
        text_id = self.text_id
        call_ids: list[int] = []
        for c in calls:
            # roles are plain words and ids hex: a join is 3x cheaper than json.dumps here
            refs = "[" + ",".join(f'["{m["role"]}","{text_id(m["content"])}"]' for m in c.prompt) + "]"
            cur = conn.execute(_INSERT_CALL, (
                episode_id, step, c.phase, c.turn, c.engine, c.model,
                refs, text_id(c.grammar), c.response, c.parsed,
                int(c.valid), c.input_tokens, c.cached_tokens, c.output_tokens, c.latency_s,
                c.finish_reason, c.created_at,
            ))  # fmt: skip
            call_ids.append(int(cur.lastrowid or 0))
        conn.executemany(_INSERT_OP, [
            (
                episode_id, step, o.phase, o.turn,
                call_ids[o.call_index] if o.call_index is not None else None,
                o.source, o.verb, o.path, json.dumps(o.args, ensure_ascii=False), int(o.ok), o.message,
                text_id(o.content_before), text_id(o.content_after),
                unified_diff(o.content_before, o.content_after, o.path) if o.ok else "", o.created_at,
            )
            for o in ops
        ])  # fmt: skip

    def call_prompt(self, call_id: int) -> list[dict[str, str]]:
        """The exact chat messages of one model call."""
        row = self.db.execute("SELECT prompt FROM llm_calls_full WHERE id = ?", [call_id]).fetchone()
        return json.loads(row[0]) if row and row[0] else []

    def finish_episode(
        self,
        episode_id: int,
        *,
        status: str,
        ended_reason: str | None = None,
        error: str | None = None,
        memory_end: dict[str, str] | None = None,
    ) -> None:
        row: dict[str, Any] = {"status": status, "ended_reason": ended_reason, "error": error, "finished_at": now()}
        if memory_end is not None:
            row["memory_end"] = json.dumps(memory_end)
        self.db["episodes"].update(episode_id, row)

    def finished_episode(self, run_id: int, task: str, seed: int) -> dict[str, Any] | None:
        """The run's finished episode of this task and seed (the newest, if several)."""
        rows = list(
            self.db["episodes"].rows_where(
                "run_id = ? AND task = ? AND seed = ? AND status = 'finished'",
                [run_id, task, seed],
                order_by="id DESC",
                limit=1,
            )  # fmt: skip
        )
        return rows[0] if rows else None

    # -- reading --------------------------------------------------------------------------
    def episode(self, episode_id: int) -> dict[str, Any]:
        return dict(self.db["episodes"].get(episode_id))

    def has_episode(self, episode_id: int) -> bool:
        return bool(self.db["episodes"].count_where("id = ?", [episode_id]))

    def episodes(self, run_id: int) -> list[dict[str, Any]]:
        return list(self.db["episodes"].rows_where("run_id = ?", [run_id], order_by="id"))

    def steps(self, episode_id: int) -> list[dict[str, Any]]:
        return list(self.db["steps"].rows_where("episode_id = ?", [episode_id], order_by="step"))

    def _rows_of(self, table: str, episode_id: int, column: str, value: str | None) -> list[dict[str, Any]]:
        """An episode's rows of ``table`` in id order, only those whose ``column`` is ``value`` if given."""
        where, params = "episode_id = ?", [episode_id]
        if value is not None:
            where, params = f"{where} AND {column} = ?", [episode_id, value]
        return list(self.db[table].rows_where(where, params, order_by="id"))

    def memory_ops_of(self, episode_id: int, *, source: str | None = None) -> list[dict[str, Any]]:
        """An episode's memory operations in the order they ran (optionally of one source)."""
        return self._rows_of("memory_ops", episode_id, "source", source)

    def first_calls_of_steps(self, episode_id: int) -> list[dict[str, Any]]:
        """Each step's first model call: its step, prompt (JSON chat messages) and input tokens."""
        rows = self.db.execute(
            "SELECT step, prompt, input_tokens FROM llm_calls_full WHERE id IN "
            "(SELECT MIN(id) FROM llm_calls WHERE episode_id = ? GROUP BY step) ORDER BY step",
            [episode_id],
        ).fetchall()
        return [{"step": r[0], "prompt": r[1], "input_tokens": r[2]} for r in rows]

    def step_prompt_tokens(self, episode_id: int) -> list[int]:
        """The prompt tokens of each step's first model call, in step order: within a transcript
        they grow step by step, so a transcript that starts again shows as a drop."""
        rows = self.db.execute(
            "SELECT input_tokens FROM llm_calls WHERE id IN "
            "(SELECT MIN(id) FROM llm_calls WHERE episode_id = ? GROUP BY step) ORDER BY step",
            [episode_id],
        ).fetchall()
        return [int(r[0] or 0) for r in rows]

    def calls_of(self, episode_id: int, *, phase: str | None = None) -> list[dict[str, Any]]:
        """An episode's model calls (without their prompts), in order, optionally of one phase."""
        return self._rows_of("llm_calls", episode_id, "phase", phase)

    def delete_episode(self, episode_id: int) -> None:
        """Remove an unfinished episode and everything it recorded (resume restarts it cleanly)."""
        with self.db.atomic():
            for table in ("memory_ops", "llm_calls", "steps"):
                self.db.execute(f"DELETE FROM {table} WHERE episode_id = ?", [episode_id])
            self.db.execute("DELETE FROM episodes WHERE id = ?", [episode_id])

    def set_run_status(self, run_id: int, status: str) -> None:
        self.db["runs"].update(run_id, {"status": status})

    # -- moving whole episodes between files (Ray workers record locally; the driver merges) --
    def export_episode(self, episode_id: int) -> dict[str, Any]:
        rows: dict[str, Any] = {"episode": self.episode(episode_id)}
        for table in ("steps", "llm_calls", "memory_ops"):
            rows[table] = list(self.db[table].rows_where("episode_id = ?", [episode_id], order_by="id"))
        ids: set[str] = set()
        for call in rows["llm_calls"]:
            ids.update(ref[1] for ref in json.loads(call["prompt_refs"] or "[]"))
            ids.add(call["grammar_id"])
        for op in rows["memory_ops"]:
            ids.update((op["before_id"], op["after_id"]))
        ids.discard(None)  # type: ignore[arg-type]
        rows["texts"] = {
            tid: self.db.execute("SELECT text FROM texts WHERE id = ?", [tid]).fetchone()[0] for tid in ids
        }
        return rows

    def import_episode(self, bundle: dict[str, Any], run_id: int) -> int:
        """Insert an exported episode under ``run_id`` with fresh ids; returns the new episode id."""
        with self.db.atomic():
            episode = {k: v for k, v in bundle["episode"].items() if k != "id"}
            episode["run_id"] = run_id
            new_id = int(self.db["episodes"].insert(episode).last_pk)  # type: ignore[arg-type]
            for tid, text in bundle.get("texts", {}).items():
                self.db.conn.execute("INSERT OR IGNORE INTO texts (id, text) VALUES (?, ?)", (tid, text))
            call_ids: dict[int, int] = {}
            for row in bundle["llm_calls"]:
                old = row["id"]
                data = {k: v for k, v in row.items() if k != "id"} | {"episode_id": new_id}
                call_ids[old] = int(self.db["llm_calls"].insert(data).last_pk)  # type: ignore[arg-type]
            for table in ("steps", "memory_ops"):
                batch = []
                for row in bundle[table]:
                    data = {k: v for k, v in row.items() if k != "id"} | {"episode_id": new_id}
                    if table == "memory_ops" and data.get("llm_call_id") is not None:
                        data["llm_call_id"] = call_ids.get(data["llm_call_id"])
                    batch.append(data)
                if batch:
                    self.db[table].insert_all(batch)
        return new_id

    def adapters_and_datasets(self) -> list[dict[str, Any]]:
        """Every training run's adapter folder with its dataset's name and selection (JSON)."""
        rows = self.db.execute(
            "SELECT t.adapter, d.name, d.selection FROM training_runs t JOIN datasets d ON d.id = t.dataset_id "
            "WHERE t.adapter IS NOT NULL ORDER BY t.id"
        ).fetchall()
        return [{"adapter": r[0], "dataset": r[1], "selection": r[2]} for r in rows]

    def run_by_name(self, name: str) -> dict[str, Any] | None:
        rows = list(self.db["runs"].rows_where("name = ?", [name]))
        return rows[0] if rows else None

    def run_by_id(self, run_id: int) -> dict[str, Any] | None:
        """The ``runs`` row with this id, or None."""
        rows = list(self.db["runs"].rows_where("id = ?", [run_id]))
        return rows[0] if rows else None

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


def _insert(table: str, columns: str) -> str:
    names = [c.strip() for c in columns.split(",")]
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"


_INSERT_CALL = _insert(
    "llm_calls",
    "episode_id, step, phase, turn, engine, model, prompt_refs, grammar_id, response, parsed, valid, input_tokens, "
    "cached_tokens, output_tokens, latency_s, finish_reason, created_at",
)
_INSERT_OP = _insert(
    "memory_ops",
    "episode_id, step, phase, turn, llm_call_id, source, verb, path, args, ok, message, before_id, "
    "after_id, diff, created_at",
)
_INSERT_STEP = _insert(
    "steps",
    "episode_id, step, observation, helper_notes, frame, action, action_source, reward, done, progression, "
    "achievements, invalid_outputs, llm_calls, memory_ops, input_tokens, cached_tokens, output_tokens, model_s, "
    "game_s, harness_s, created_at",
)
