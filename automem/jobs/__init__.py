"""Background jobs: long CLI work (evaluation, optimization, mining, fine-tuning) run as a subprocess
and recorded in ``jobs``.

The parent (the TUI, or ``automem jobs``) only starts, lists and cancels (supervisor); the child is
a plain ``python -m automem ARGV`` whose run_as_job wrapper keeps the row's status and progress up
to date (child); the TUI forms build those arguments (commands). Everything lives in the database
and a log file, so a job outlives the front end that started it and any later front end shows it
again.

The names below are the ones front ends import; private helpers (and anything a test patches) live
in, and are patched on, their own module.
"""

from automem.jobs.child import report_progress, run_as_job
from automem.jobs.commands import (
    eval_job_argv,
    finetune_job_argv,
    held_out_warnings,
    mine_job_argv,
    optimize_job_argv,
    pipeline_job_argv,
)
from automem.jobs.supervisor import (
    ACTIVE,
    JOB_ENV,
    Job,
    JobError,
    cancel_job,
    get_job,
    jobs_dir,
    list_jobs,
    progress_text,
    read_log,
    read_log_file,
    reconcile,
    start_job,
)

__all__ = [
    "ACTIVE",
    "JOB_ENV",
    "Job",
    "JobError",
    "cancel_job",
    "eval_job_argv",
    "finetune_job_argv",
    "get_job",
    "held_out_warnings",
    "jobs_dir",
    "list_jobs",
    "mine_job_argv",
    "optimize_job_argv",
    "pipeline_job_argv",
    "progress_text",
    "read_log",
    "read_log_file",
    "reconcile",
    "report_progress",
    "run_as_job",
    "start_job",
]
