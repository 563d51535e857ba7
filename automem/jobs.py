"""Background jobs: long CLI work (evaluation, optimization, mining, fine-tuning) run as a subprocess
and recorded in ``jobs``.

The parent (the TUI, or ``automem jobs``) only starts, lists and cancels; the child is a plain
``python -m automem ARGV`` whose :func:`run_as_job` wrapper keeps the row's status and progress up
to date. Everything lives in the database and a log file, so a job outlives the front end that
started it and any later front end shows it again.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

from automem.errors import AutomemError
from automem.procs import process_alive
from automem.store.db import DB_ENV, Store, default_db_path, now
from automem.store.jobs import ACTIVE_STATUSES

JOB_ENV = "AUTOMEM_JOB_ID"
ACTIVE = ACTIVE_STATUSES
#: a queued row without a process after this long was left by a front end that died mid-start
QUEUED_GRACE_S = 60.0

#: processes this process started: polling them reaps zombies, which os.kill(pid, 0) calls alive
_children: dict[int, subprocess.Popen[bytes]] = {}


class JobError(AutomemError):
    """No such job, or a job that cannot be started or cancelled; the message says which."""


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    title: str
    argv: list[str]
    status: str
    pid: int | None
    progress_done: int
    progress_total: int
    progress_info: str
    log_path: str | None
    exit_code: int | None
    error: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        return cls(
            id=row["id"],
            kind=row["kind"] or "",
            title=row["title"] or "",
            argv=json.loads(row["argv"] or "[]"),
            status=row["status"] or "queued",
            pid=row["pid"],
            progress_done=row["progress_done"] or 0,
            progress_total=row["progress_total"] or 0,
            progress_info=row["progress_info"] or "",
            log_path=row["log_path"],
            exit_code=row["exit_code"],
            error=row["error"],
            created_at=row["created_at"] or "",
            started_at=row["started_at"],
            finished_at=row["finished_at"],
        )

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def command(self) -> str:
        return "automem " + shlex.join(self.argv)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- parent side ------------------------------------------------------------------------------
def jobs_dir(store: Store) -> Path:
    return store.path.parent / "jobs"


def start_job(store: Store, kind: str, argv: list[str], title: str) -> int:
    """Record a job and launch ``python -m automem ARGV`` in its own session; returns the job id."""
    job_id = store.insert_job(kind, title, argv)
    log_path = jobs_dir(store) / f"{job_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    store.update_job(job_id, log_path=str(log_path))
    env = {
        **os.environ,
        JOB_ENV: str(job_id),
        DB_ENV: str(store.path),
        "PYTHONUNBUFFERED": "1",  # the log view follows the file as lines are written
        "COLUMNS": "120",  # rich's tables in the log: wider than its 80-column default for files
    }
    with open(log_path, "ab") as log:
        log.write(f"$ automem {shlex.join(argv)}\n".encode())
        log.flush()
        try:
            # a new session: the job survives the terminal closing and the front end quitting, and
            # its pid is the process group that cancel_job signals (worker processes included)
            proc = subprocess.Popen(
                [sys.executable, "-m", "automem", *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            _finish(store, job_id, "failed", error=f"cannot start: {exc}")
            raise JobError(f"cannot start job {job_id}: {exc}") from None
    _children[proc.pid] = proc
    store.job_launched(job_id, proc.pid)
    return job_id


def get_job(store: Store, job_id: int) -> Job:
    row = store.job_row(job_id)
    if row is None:
        raise JobError(f"no job {job_id}")
    return Job.from_row(row)


def list_jobs(store: Store) -> list[Job]:
    """All jobs, oldest first, after marking the ones whose process died without a word as lost."""
    reconcile(store)
    return [Job.from_row(r) for r in store.job_rows()]


def reconcile(store: Store) -> None:
    for row in store.job_rows(active_only=True):
        pid = row["pid"]
        if pid is None:
            if _age_s(row["created_at"]) < QUEUED_GRACE_S:
                continue
        elif _alive(pid):
            continue
        # conditional: a child that wrote its final status and exited since the read keeps it
        if row.get("cancel_requested_at"):
            _finish(store, row["id"], "cancelled", only_active=True)  # killed before its handler was in place
        else:
            _finish(store, row["id"], "lost", error="the process ended without recording a result", only_active=True)


def cancel_job(store: Store, job_id: int, *, wait_s: float = 10.0) -> Job:
    """Stop a job: SIGTERM to its process, which stops like Ctrl+C and records ``cancelled``.

    The job relays an interrupt to its worker processes itself, so they record their episodes as
    interrupted; a job still running after ``wait_s`` gets SIGTERM on its whole process group. A
    child that is gone without recording anything (killed before its handler was installed, or
    already dead) is marked cancelled here. Returns the job as it stands.
    """
    job = get_job(store, job_id)
    if not job.active:
        raise JobError(f"job {job_id} is not running (it is {job.status})")
    # recorded first: whoever sees the process gone (this call or another front end's reconcile)
    # then calls it cancelled even when it died before it could record anything
    store.request_job_cancel(job_id)
    pid = job.pid
    if pid is None or not _alive(pid):
        _finish(store, job_id, "cancelled", only_active=True)
        return get_job(store, job_id)
    _signal(pid, group=False)
    if not _wait_ended(store, job_id, pid, wait_s):
        _signal(pid, group=True)  # a stuck job: its workers go too, the leader's handler ignores a repeat
        _wait_ended(store, job_id, pid, 5.0)
    if not _alive(pid):
        _finish(store, job_id, "cancelled", only_active=True)
    return get_job(store, job_id)


def _signal(pid: int, *, group: bool) -> None:
    try:
        if group and os.getpgid(pid) == pid:  # start_job made it a session (and group) leader
            os.killpg(pid, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def _wait_ended(store: Store, job_id: int, pid: int, wait_s: float) -> bool:
    """Whether the job recorded a final status or its process ended within ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        if not get_job(store, job_id).active or not _alive(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def progress_text(done: int, total: int, width: int = 10) -> str:
    """A text bar such as ``███░░░░░░░ 3/10`` (``-`` while nothing is counted)."""
    if total <= 0:
        return "-"
    filled = round(width * min(done, total) / total)
    return "█" * filled + "░" * (width - filled) + f" {done}/{total}"


def read_log(store: Store, job_id: int, tail_bytes: int | None = None) -> str:
    """The job's log (its last ``tail_bytes``, cut at a line start, when given)."""
    job = get_job(store, job_id)
    if not job.log_path:
        return ""
    text, _ = read_log_file(Path(job.log_path), tail_bytes=tail_bytes)
    return text


def read_log_file(
    path: Path, offset: int = 0, *, tail_bytes: int | None = None, whole_lines: bool = False
) -> tuple[str, int]:
    """Text from ``offset`` (or the last ``tail_bytes``) to the end, and the offset to read on from.

    ``whole_lines`` stops after the last newline, so a follower never splits a line (or a UTF-8
    character) that the job is still writing.
    """
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = min(size, max(offset, size - tail_bytes) if tail_bytes is not None else offset)
            f.seek(start)
            data = f.read()
    except OSError:
        return "", offset
    end = start + len(data)
    if whole_lines:
        data = data[: data.rfind(b"\n") + 1]
        end = start + len(data)
    if tail_bytes is not None and start > offset and b"\n" in data:
        data = data[data.index(b"\n") + 1 :]  # drop the partial first line
    return _clean(data.decode("utf-8", errors="replace")), end


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _clean(text: str) -> str:
    # logs are written for files, but a library may still emit colour codes or carriage returns
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def _finish(store: Store, job_id: int, status: str, *, error: str | None = None, only_active: bool = False) -> None:
    store.end_job(job_id, status, error=error, only_active=only_active)


def _age_s(stamp: str | None) -> float:
    import datetime as dt

    try:
        created = dt.datetime.fromisoformat(stamp or "")
    except ValueError:
        return float("inf")
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.timezone.utc)
    return (dt.datetime.now(dt.timezone.utc) - created).total_seconds()


def _alive(pid: int) -> bool:
    """Whether ``pid`` is still an automem process (not dead, not a zombie, not a reused pid)."""
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    return process_alive(pid, cmdline_has=b"automem")


# -- child side -------------------------------------------------------------------------------
_current: dict[str, Any] = {}  # "id" and "store" while this process runs as a job
_progress_lock = threading.Lock()


def report_progress(done: int, total: int, info: str = "") -> None:
    """Record progress on this process's job row; a no-op outside a job (one dict lookup)."""
    job_id = _current.get("id")
    if job_id is None:
        return
    import sqlite3

    try:
        with _progress_lock:
            _current["store"].update_job(job_id, progress_done=done, progress_total=total, progress_info=info)
    except sqlite3.Error:
        pass  # progress is for display: never fail the work because of it


def run_as_job(entry: Callable[[], object]) -> NoReturn:
    """Run the CLI ``entry`` as job $AUTOMEM_JOB_ID: mark it running, record how it ended, exit.

    SIGTERM becomes KeyboardInterrupt, the path Ctrl+C takes, so commands stop the way they do at
    a terminal (eval marks its run and episodes interrupted) and the store stays consistent.
    """
    job_id = int(os.environ.pop(JOB_ENV))  # popped: automem processes this one starts are not the job
    store = Store(default_db_path())  # $AUTOMEM_DB, which start_job set
    try:
        log_path = get_job(store, job_id).log_path
    except JobError:
        store.close()
        _exit_with(entry)
    state = {"cancelled": False, "in_entry": False}

    def on_term(signum: int, frame: object) -> None:
        if state["cancelled"]:
            return  # a second SIGTERM: let the first one's clean-up finish
        state["cancelled"] = True
        if state["in_entry"]:
            # eval's episode threads stop at their next step on KeyboardInterrupt (runs.eval)
            _interrupt_worker_processes()
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # Ctrl+C semantics even when started with SIGINT ignored; worker processes started from here
    # then get Python's KeyboardInterrupt for SIGINT too (see _interrupt_worker_processes)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _current.update(id=job_id, store=store)
    store.update_job(job_id, status="running", pid=os.getpid(), started_at=now())
    code = 0
    try:
        try:
            state["in_entry"] = True
            if state["cancelled"]:  # SIGTERM before the command began
                raise KeyboardInterrupt
            entry()
        finally:
            state["in_entry"] = False
    except SystemExit as exc:
        code = _exit_code(exc)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # an unexpected crash still ends as a recorded failure
        import traceback

        traceback.print_exc()
        code = 1
    if state["cancelled"]:
        _join_threads(timeout_s=60.0)  # interrupted episode threads record their status first
    sys.stdout.flush()
    sys.stderr.flush()
    if state["cancelled"] and code != 0:
        status, error = "cancelled", None
    elif code == 0:
        status, error = "finished", None
    else:
        status, error = "failed", _last_line(log_path) or f"exit code {code}"
    with _progress_lock:
        store.update_job(job_id, status=status, exit_code=code, error=error, finished_at=now())
    _current.clear()
    store.close()
    sys.exit(code)


def _exit_with(entry: Callable[[], object]) -> NoReturn:
    entry()
    sys.exit(0)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _interrupt_worker_processes() -> None:
    # what a terminal's Ctrl+C does: SIGINT to the whole process group, so eval's worker processes
    # record their episodes as interrupted instead of dying mid-episode; the leader (this process)
    # ignores it, it is already stopping
    if os.getpgrp() != os.getpid():
        return  # not started by start_job: the group may hold processes that are not ours
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.killpg(os.getpid(), signal.SIGINT)


def _join_threads(timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))


def _last_line(log_path: str | None) -> str | None:
    if not log_path:
        return None
    text, _ = read_log_file(Path(log_path), tail_bytes=4096)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


# -- what the front ends start ----------------------------------------------------------------
#: the CLI's limit on --workers
MAX_WORKERS = 256


def held_out_warnings(store: Store, argv: list[str]) -> list[str]:
    """For an eval job's arguments: a warning per engine that plays an adapter whose dataset was
    mined from the seeds it is about to play."""
    from automem.finetune.ledger import seed_warnings
    from automem.runs.seeds import parse_seeds

    if not argv or argv[0] != "eval":
        return []
    values = {flag: argv[i + 1] for i, flag in enumerate(argv[:-1]) if flag.startswith("--")}
    try:
        seeds = parse_seeds(values.get("--seeds", ""))
    except ValueError:
        return []
    return seed_warnings(store, [values.get("--engine"), values.get("--memory-engine")], seeds)


def eval_job_argv(
    *,
    game: str,
    seeds: str,
    tasks: str = "",
    episodes_per_task: str = "",
    max_steps: str = "20",
    workers: str = "1",
    structure: str = "",
    engine: str = "llamacpp",
    run_name: str = "",
    db: Path | None = None,
) -> list[str]:
    """Check a form's fields (as typed) and build the ``eval`` arguments; JobError says what is wrong."""
    _check_game_and_seeds(game, seeds)
    structure = _checked_structure(structure, game, db)
    engine = _checked_engine(engine)
    argv = ["eval", game, "--seeds", seeds.strip(), *_option("--tasks", tasks)]
    if episodes_per_task.strip():
        argv += ["--episodes-per-task", _whole_number(episodes_per_task, "episodes per task")]
    argv += ["--max-steps", _whole_number(max_steps, "max steps")]
    argv += ["--workers", _whole_number(workers, "workers", most=MAX_WORKERS)]
    argv += [*_option("--structure", structure), "--engine", engine]
    return argv + _option("--run-name", run_name) + _db_option(db)


def optimize_job_argv(
    *,
    game: str,
    seeds: str,
    from_structure: str = "",
    agent_engine: str = "llamacpp",
    critic: str = "heuristic",
    tasks: str = "",
    iterations: str = "3",
    candidates: str = "2",
    max_steps: str = "20",
    workers: str = "1",
    run_name: str = "",
    db: Path | None = None,
) -> list[str]:
    """Check a form's fields (as typed) and build the ``optimize`` (loop 1) arguments; JobError says what is wrong."""
    _check_game_and_seeds(game, seeds)
    from_structure = _checked_structure(from_structure, game, db)
    agent_engine = _checked_engine(agent_engine, "agent engine")
    critic = _checked_critic(critic)
    argv = ["optimize", game, "--seeds", seeds.strip(), *_option("--tasks", tasks)]
    argv += ["--iterations", _whole_number(iterations, "iterations")]
    argv += ["--candidates", _whole_number(candidates, "candidates")]
    argv += ["--max-steps", _whole_number(max_steps, "max steps")]
    argv += ["--workers", _whole_number(workers, "workers", most=MAX_WORKERS)]
    argv += [*_option("--from", from_structure), "--agent-engine", agent_engine, "--critic", critic]
    return argv + _option("--run-name", run_name) + _db_option(db)


def mine_job_argv(*, runs: str, out: str, min_score: str = "2", judge: str = "", db: Path | None = None) -> list[str]:
    """Check a form's fields and build the ``mine`` (loop 2's dataset) arguments; JobError says what is wrong."""
    names = [r.strip() for r in runs.replace(",", " ").split() if r.strip()]
    if not names:
        raise JobError("runs: name at least one run to mine (comma-separate several)")
    out = _plain_name(out, "dataset name")
    with _store_of(db) as store:
        missing = [n for n in names if store is None or store.run_by_name(n) is None]
        if missing:
            raise JobError(f"runs: no run named {', '.join(map(repr, missing))}")
        if store.dataset_exists(out):
            raise JobError(f"dataset name: {out!r} exists; choose another")
    argv = ["mine", *(a for n in names for a in ("--runs", n)), "--out", out]
    argv += ["--min-score", _number(min_score, "min score", least=0.0)]
    if judge.strip():
        argv += ["--judge", _checked_engine(judge, "judge")]
    return argv + _db_option(db)


FINETUNE_BACKENDS = ("auto", "unsloth", "peft")


def finetune_job_argv(
    *,
    dataset: str,
    out: str,
    base: str = "bundled",
    backend: str = "auto",
    lora_r: str = "8",
    lora_alpha: str = "16",
    epochs: str = "1",
    lr: str = "2e-4",
    max_steps: str = "",
    db: Path | None = None,
) -> list[str]:
    """Check a form's fields and build the ``finetune`` (loop 2's trainer) arguments; JobError says what is wrong."""
    dataset = dataset.strip()
    out = _plain_name(out, "name")
    with _store_of(db) as store:
        if store is None or not store.dataset_exists(dataset):
            raise JobError(f"dataset: no dataset named {dataset!r} (make one with a mine job)")
        if store.training_run_exists(out):
            raise JobError(
                f"name: training run {out!r} exists; choose another (resume it with automem finetune --resume)"
            )
    base = base.strip() or "bundled"
    if base not in ("bundled", "llamacpp"):
        from automem.engines import EngineError
        from automem.engines.transformers_engine import resolve_model

        try:
            resolve_model(base)
        except EngineError as exc:
            raise JobError(f"base: {exc}") from None
        base = str(Path(base).expanduser().resolve())
    backend = backend.strip() or "auto"
    if backend not in FINETUNE_BACKENDS:
        raise JobError(f"backend must be {', '.join(FINETUNE_BACKENDS)}, not {backend!r}")
    argv = ["finetune", "--dataset", dataset, "--out", out, "--base", base, "--backend", backend]
    argv += ["--lora-r", _whole_number(lora_r, "LoRA r"), "--lora-alpha", _whole_number(lora_alpha, "LoRA alpha")]
    argv += ["--epochs", _number(epochs, "epochs", least=0.01), "--lr", _number(lr, "learning rate", least=1e-7)]
    if max_steps.strip():
        argv += ["--max-steps", _whole_number(max_steps, "max steps")]
    return argv + _db_option(db)


@contextmanager
def _store_of(db: Path | None) -> Iterator[Store | None]:
    """The form's database, opened for a check and closed after; None when it does not exist yet."""
    path = db if db is not None else default_db_path()
    if not path.exists():
        yield None
        return
    store = Store(path)
    try:
        yield store
    finally:
        store.close()


def _plain_name(text: str, label: str) -> str:
    from automem.runs.run import is_plain_name

    name = text.strip()
    if not is_plain_name(name):
        raise JobError(f"{label} must be a plain name (letters, digits, _ . -), not {name!r}")
    return name


def _number(text: str, label: str, *, least: float) -> str:
    value = text.strip()
    try:
        number = float(value)
    except ValueError:
        raise JobError(f"{label} must be a number, not {value!r}") from None
    if not number >= least:  # also refuses nan
        raise JobError(f"{label} must be at least {least:g}, not {value!r}")
    return value


def _check_game_and_seeds(game: str, seeds: str) -> None:
    from automem.games import GameError, get_game_class
    from automem.runs.seeds import SeedError, parse_seeds

    try:
        get_game_class(game)
        parse_seeds(seeds)
    except (GameError, SeedError, ValueError) as exc:
        raise JobError(str(exc)) from None


def _checked_structure(spec: str, game: str, db: Path | None) -> str:
    """``spec`` stripped, once it names a structure for ``game``: a built-in, a YAML file, or the id
    (prefix) of a version stored in ``db`` (the default database when None); "" for the game's default."""
    from automem.memory.structure import StructureError, resolve_structure
    from automem.runs.run import check_structure_fits, find_structure, looks_like_id
    from automem.store.db import StoreError

    spec = spec.strip()
    if not spec:
        return ""
    try:
        if not looks_like_id(spec):
            structure = resolve_structure(spec)
        else:
            path = db if db is not None else default_db_path()
            if not path.exists():  # no database yet: only a built-in or a file can match
                try:
                    structure = resolve_structure(spec)
                except StructureError:
                    raise StructureError(f"no stored structure with id {spec!r} ({path} does not exist)") from None
            else:
                store = Store(path)
                try:
                    structure = find_structure(spec, store)
                finally:
                    store.close()
        check_structure_fits(structure, game)
    except (StructureError, StoreError, ValueError) as exc:
        raise JobError(str(exc)) from None
    return spec


def _checked_engine(text: str, label: str = "") -> str:
    """An engine spec or a profile name from the user config (stripped; "" is llamacpp); ``label``
    names the field in the message when the form has more than one engine."""
    from automem.engines import EngineError, engine_names, resolve_engine_spec, split_spec

    name_or_spec = text.strip() or "llamacpp"
    try:
        spec, _ = resolve_engine_spec(name_or_spec)
        if split_spec(spec)[0] not in engine_names():
            raise EngineError(f"unknown engine {name_or_spec!r}; known: {', '.join(engine_names())}")
    except (EngineError, ValueError) as exc:
        raise JobError(f"{label}: {exc}" if label else str(exc)) from None
    return name_or_spec


def _checked_critic(text: str) -> str:
    """``heuristic``, ``command:PROGRAM ARGS`` with a program found on PATH, or an engine spec or
    profile, optionally after ``whole:`` (stripped; "" is heuristic)."""
    import shutil

    critic = text.strip() or "heuristic"
    if critic == "heuristic":
        return critic
    if critic.startswith("command:"):
        try:
            words = shlex.split(critic.removeprefix("command:"))
        except ValueError as exc:
            raise JobError(f"critic: cannot split the command: {exc}") from None
        if not words:
            raise JobError("critic: command: needs a program, as in command:PROGRAM ARGS")
        if shutil.which(words[0]) is None:
            raise JobError(f"critic: program {words[0]!r} not found (or not executable)")
        return critic
    engine = critic.removeprefix("whole:")
    if not engine.strip():
        raise JobError("critic: whole: needs an engine spec or profile, as in whole:SPEC")
    _checked_engine(engine, "critic")
    return critic


def _whole_number(text: str, label: str, *, most: int | None = None) -> str:
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or int(value) < 1 or (most is not None and int(value) > most):
        bounds = f"from 1 to {most}" if most is not None else "of at least 1"
        raise JobError(f"{label} must be a whole number {bounds}, not {value!r}")
    return str(int(value))


def _option(flag: str, text: str) -> list[str]:
    """``[flag, text]`` for a field that was filled in, ``[]`` for one left empty."""
    return [flag, text.strip()] if text.strip() else []


def _db_option(db: Path | None) -> list[str]:
    return ["--db", str(db)] if db is not None else []
