"""Background jobs started from the TUI: ``jobs list``, ``jobs cancel``, ``jobs log``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from automem.cli.app import (
    DbOption,
    app,
    console,
    open_store,
)

jobs_app = typer.Typer(help="Background jobs (started from the TUI): list, cancel, read logs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


@jobs_app.command("list")
def jobs_list(db: DbOption = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Jobs with status and progress (a job whose process died unrecorded shows as lost)."""
    from automem.jobs import list_jobs, progress_text

    jobs = list_jobs(open_store(db))
    if as_json:
        console.print_json(json.dumps([j.to_dict() for j in jobs]))
        return
    table = Table(title="jobs")
    for col in ("id", "kind", "status", "progress", "title", "started", "pid"):
        table.add_column(col)
    for j in jobs:
        started = (j.started_at or j.created_at)[:19].replace("T", " ")
        table.add_row(str(j.id), j.kind, j.status, progress_text(j.progress_done, j.progress_total), j.title,
                      started, str(j.pid or "-"))  # fmt: skip
    console.print(table)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[int, typer.Argument(help="Job id (see `automem jobs list`).")],
    db: DbOption = None,
    wait: Annotated[float, typer.Option(min=0.0, help="Seconds to wait for the job to stop.")] = 10.0,
) -> None:
    """Stop a running job (SIGTERM to its process group); it records itself as cancelled."""
    from automem.jobs import cancel_job

    job = cancel_job(open_store(db), job_id, wait_s=wait)
    if job.active:
        console.print(f"job {job_id}: asked to stop, still {job.status}")
    else:
        console.print(f"job {job_id}: {job.status}")


@jobs_app.command("log")
def jobs_log(
    job_id: Annotated[int, typer.Argument(help="Job id (see `automem jobs list`).")],
    db: DbOption = None,
    tail: Annotated[int | None, typer.Option("--tail", "-n", min=1, help="Only the last N lines.")] = None,
) -> None:
    """Print a job's output (its stdout and stderr)."""
    from automem.jobs import read_log

    text = read_log(open_store(db), job_id)
    lines = text.splitlines()
    typer.echo("\n".join(lines[-tail:] if tail else lines))
