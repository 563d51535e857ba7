"""The parent side of background jobs: start ``python -m automem ARGV`` in its own session, list,
reconcile and cancel jobs, read their logs.

A job is a ``jobs`` row (written through the store's job methods) and a log file, not a child
of whoever started it, so it outlives the front end and any later front end shows it again.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from automem.errors import AutomemError
from automem.procs import process_alive
from automem.store.db import DB_ENV, Store
from automem.store.jobs import ACTIVE_STATUSES

#: set in the child's environment by start_job; automem/jobs/child.py reads it (and cli.main spells it out)
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
