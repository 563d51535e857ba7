"""What a job's plot shows: the loss curve of a fine-tuning job's training run, the progression of an
optimization job; other jobs have none. Read from the store each time, so a running job's plot grows."""

from __future__ import annotations

from automem.finetune.losses import LossCurve, curve_from_log
from automem.jobs.supervisor import Job
from automem.optimize.progression import Progression, ProgressionError, progression
from automem.store.db import Store

#: the job kinds that have a plot
PLOTTED = ("finetune", "optimize")


def _flag(argv: list[str], flag: str) -> str | None:
    values = {f: argv[i + 1] for i, f in enumerate(argv[:-1]) if f.startswith("--")}
    return values.get(flag)


def job_series(store: Store, job: Job) -> LossCurve | Progression | str:
    """The series of a job's plot, or a line saying why there is none (yet)."""
    command = job.argv[0] if job.argv else ""
    if command == "finetune":
        name = _flag(job.argv, "--out")
        row = store.training_run_by_name(name) if name else None
        if row is None:
            return f"training run {name or '?'} is not recorded yet"
        return curve_from_log(name or "", row)
    if command == "optimize":
        name = _flag(job.argv, "--run-name")
        if name is None:
            # the default name is made when the job starts: the optimization it created then
            started = job.started_at or job.created_at
            made = [r["name"] for r in store.optimizations() if (r["created_at"] or "") >= started]
            name = made[0] if made else None
        if name is None:
            return "the optimization is not recorded yet"
        try:
            return progression(store, name)
        except ProgressionError as exc:
            return str(exc)
    return f"a {job.kind or command} job has no plot (fine-tuning and optimization jobs do)"
