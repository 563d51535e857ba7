"""The child side of a background job: ``python -m automem ARGV`` with $AUTOMEM_JOB_ID set runs
its command through :func:`run_as_job`, which keeps the job's row (status, progress, exit code)
up to date and turns the parent's SIGTERM into the Ctrl+C path.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from automem.jobs.supervisor import JOB_ENV, JobError, get_job, read_log_file
from automem.store.db import Store, default_db_path, now

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
