"""Jobs: start evaluations and optimizations (loop 1) as background processes, follow their
progress and logs, cancel them.

Jobs are rows in the store (see automem.jobs), not children of this screen: they keep running
when the TUI quits, and the table shows them again on the next start.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import ContentSwitcher, DataTable, Footer, Header, Log, ProgressBar, Static
from textual.worker import Worker, WorkerState

from automem.finetune.losses import LossCurve
from automem.jobs import (
    Job,
    JobError,
    cancel_job,
    held_out_warnings,
    list_jobs,
    progress_text,
    read_log_file,
    start_job,
)
from automem.jobs.plots import job_series
from automem.optimize.progression import Progression
from automem.store.db import Store
from automem.tui.context import TuiContext
from automem.tui.widgets.job_form import (
    EvalJobForm,
    FinetuneJobForm,
    JobRequest,
    MineJobForm,
    OptimizeJobForm,
    PipelineJobForm,
)
from automem.tui.widgets.plots import SeriesPlot

COLUMNS = ("id", "kind", "title", "status", "progress", "started")
STATUS_STYLE = {
    "queued": "dim",
    "running": "bold cyan",
    "finished": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "lost": "magenta",
}
#: how much of a log the view loads when a job is selected (it follows new lines from there)
LOG_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class LogUpdate:
    job_id: int
    text: str
    start: int  # the file offset the text was read from
    offset: int  # ... and the one to read on from
    fresh: bool  # replace the view's text (another job was selected) rather than append


@dataclass(frozen=True)
class PlotUpdate:
    job_id: int
    series: LossCurve | Progression | str


class JobsScreen(Screen[None]):
    DEFAULT_CSS = """
    JobsScreen #jobs-table { height: 1fr; max-height: 50%; }
    JobsScreen #job-detail { height: auto; padding: 0 1; border-top: hkey $panel; }
    JobsScreen #job-summary { width: 1fr; height: auto; }
    JobsScreen #job-progress { width: auto; height: 1; }
    JobsScreen #job-lower { height: 1fr; border-top: hkey $panel; }
    JobsScreen #job-log { height: 1fr; }
    """
    BINDINGS = [
        Binding("n", "new_eval", "New evaluation", id="jobs-new-eval", tooltip="Start an evaluation as a job"),
        Binding(
            "o",
            "new_optimize",
            "New optimization",
            id="jobs-new-optimize",
            tooltip="Start loop 1 as a job: a critic revises the structure, kept when it scores better",
        ),
        Binding(
            "m",
            "new_mine",
            "Mine dataset",
            id="jobs-new-mine",
            tooltip="Loop 2: mine the memory decisions worth reinforcing from recorded runs",
        ),
        Binding(
            "f",
            "new_finetune",
            "Fine-tune",
            id="jobs-new-finetune",
            tooltip="Loop 2: train a LoRA memory specialist on a mined dataset",
        ),
        Binding(
            "p",
            "new_pipeline",
            "Pipeline",
            id="jobs-new-pipeline",
            tooltip="The whole protocol from a pipeline file: evaluate, loop 1, mine, fine-tune, compare",
        ),
        Binding("c", "cancel_job", "Cancel job", id="jobs-cancel", tooltip="Stop the selected job (SIGTERM)"),
        Binding(
            "v",
            "plot",
            "Plot",
            id="jobs-plot",
            tooltip="The log or a plot: a fine-tuning job's loss per step, an optimization's progression per iteration",
        ),
        Binding("r", "refresh", "Refresh", id="jobs-refresh", tooltip="Read the jobs table and the log now"),
    ]
    REFRESH_S = 1.0

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.jobs: dict[int, Job] = {}
        self.selected: int | None = None
        #: a job this screen just started, selected once a refresh lists it (a refresh already in
        #: flight may not list it yet, and would otherwise select the newest job it knows of)
        self._select_when_listed: int | None = None
        self._log_job: int | None = None
        self._log_offset = 0
        #: a connection of our own: refreshes read in a thread while other screens use ctx.store
        self._store: Store | None = None
        self._busy = threading.Lock()
        #: whether the lower pane shows the plot (read by the refresh thread, so not a widget query)
        self._plotting = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="jobs-body"):
            table: DataTable[str | Text] = DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
            yield table
            with Horizontal(id="job-detail"):
                yield Static("no job selected: press n to start an evaluation, o an optimization", id="job-summary")
                yield ProgressBar(show_eta=False, id="job-progress")
            with ContentSwitcher(initial="job-log", id="job-lower"):
                yield Log(id="job-log", max_lines=5000, highlight=False)
                yield SeriesPlot(id="job-plot")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Jobs"
        for column in COLUMNS:
            self.table.add_column(column, key=column)
        self.table.focus()
        # the first read happens here, on the UI thread, so the screen never opens empty; it is a
        # handful of rows and the tail of one file
        self._apply(*self._read())
        self.set_interval(self.REFRESH_S, self._tick)

    def _tick(self) -> None:
        if self.is_current:  # not while another mode's screen is shown
            self.action_refresh()

    def on_screen_resume(self) -> None:
        self.action_refresh()

    def on_unmount(self) -> None:
        # not under a refresh that is still reading (it may be waiting on this thread: then leave it)
        if self._store is not None and self._busy.acquire(timeout=1.0):
            self._store.close()
            self._busy.release()

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one("#jobs-table", DataTable)

    # -- reading ---------------------------------------------------------------------------
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.ctx.store.path)
        return self._store

    @property
    def plot_shown(self) -> bool:
        return self.query_one("#job-lower", ContentSwitcher).current == "job-plot"

    def _read(self) -> tuple[list[Job], LogUpdate | PlotUpdate | None]:
        jobs = list_jobs(self.store())
        selected = self.selected if self.selected is not None else (jobs[-1].id if jobs else None)
        by_id = {j.id: j for j in jobs}
        job = by_id.get(selected) if selected is not None else None
        if job is not None and self._plotting:
            return jobs, PlotUpdate(job.id, job_series(self.store(), job))
        if job is None or not job.log_path:
            return jobs, None
        if job.id == self._log_job:
            start = self._log_offset
            text, offset = read_log_file(Path(job.log_path), start, whole_lines=True)
            return jobs, LogUpdate(job.id, text, start, offset, fresh=False)
        text, offset = read_log_file(Path(job.log_path), tail_bytes=LOG_TAIL_BYTES, whole_lines=True)
        return jobs, LogUpdate(job.id, text, 0, offset, fresh=True)

    @work(thread=True, group="jobs-refresh", exit_on_error=False)
    def _refresh_in_thread(self) -> None:
        if not self._busy.acquire(blocking=False):
            return  # the last refresh is still reading (a busy database): skip this tick
        try:
            jobs, log = self._read()
            # applied while still holding the lock: the next read starts from the offset this sets
            self.app.call_from_thread(self._apply, jobs, log)
        finally:
            self._busy.release()

    def action_refresh(self) -> None:
        self._refresh_in_thread()

    # -- showing ----------------------------------------------------------------------------
    def _apply(self, jobs: list[Job], log: LogUpdate | PlotUpdate | None) -> None:
        table = self.table
        for job in jobs:
            cells = _cells(job)
            key = str(job.id)
            if key in table.rows:
                if self.jobs.get(job.id) != job:
                    for column, cell in zip(COLUMNS, cells, strict=True):
                        table.update_cell(key, column, cell, update_width=True)
            else:
                table.add_row(*cells, key=key)
        self.jobs = {j.id: j for j in jobs}
        if self._select_when_listed in self.jobs:
            self.select(self._select_when_listed)
            self._select_when_listed = None
        elif self.selected is None and jobs:
            self.select(jobs[-1].id)  # the newest job, so a restarted TUI shows what is going on
        self._show_detail()
        if log is None or log.job_id != self.selected:
            return
        if isinstance(log, PlotUpdate):
            if self.plot_shown:
                self.query_one(SeriesPlot).show(log.series, title=f"job {log.job_id}")
            return
        if log.fresh or (log.job_id == self._log_job and log.start == self._log_offset):
            view = self.query_one("#job-log", Log)
            if log.fresh:
                view.clear()
            if log.text:
                view.write(log.text)
            self._log_job, self._log_offset = log.job_id, log.offset

    def select(self, job_id: int) -> None:
        key = str(job_id)
        if key in self.table.rows:
            self.table.move_cursor(row=self.table.get_row_index(key))
        self._set_selected(job_id)

    def _set_selected(self, job_id: int) -> None:
        if job_id == self.selected:
            return
        self.selected = job_id
        self._log_job = None  # the next read loads this job's tail
        self.query_one("#job-log", Log).clear()
        self._show_detail()

    def _show_detail(self) -> None:
        job = self.jobs.get(self.selected) if self.selected is not None else None
        bar = self.query_one("#job-progress", ProgressBar)
        summary = self.query_one("#job-summary", Static)
        bar.display = job is not None
        if job is None:
            return
        line = Text.assemble((f"job {job.id} ", "bold"), (job.status, _style(job.status)), f" · {job.command}")
        if job.progress_info:
            line.append(f"\n{job.progress_info}", style="dim")
        if job.error:
            line.append(f"\n{job.error}", style="red")
        summary.update(line)
        if job.progress_total:
            bar.update(total=job.progress_total, progress=job.progress_done)
        else:  # nothing counted yet: pulsing while it runs, full or empty once it ended
            done = job.status == "finished"
            bar.update(total=None if job.active else 1, progress=1 if done else 0)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # the one error handler of this screen's workers: a locked or broken database, an unreadable
        # log or a failed launch is a notification, never a crash of the TUI
        if event.state == WorkerState.ERROR:
            self.notify(f"jobs: {event.worker.error}", severity="error")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # the row under the cursor now, not the event's: the highlight of row 0 that adding the
        # first rows posts arrives after select() has already moved to the newest job
        table = self.table
        if 0 <= table.cursor_row < table.row_count:
            key = table.ordered_rows[table.cursor_row].key.value
            if key is not None and int(key) != self.selected:
                self._set_selected(int(key))
                self.action_refresh()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self._set_selected(int(event.row_key.value))
            self.query_one("#job-log", Log).scroll_end(animate=False)

    # -- actions ----------------------------------------------------------------------------
    def action_plot(self) -> None:
        switcher = self.query_one("#job-lower", ContentSwitcher)
        self._plotting = not self.plot_shown
        switcher.current = "job-plot" if self._plotting else "job-log"
        if not self._plotting:
            self._log_job = None  # the log was not followed meanwhile: read its tail again
        self.action_refresh()

    def action_new_eval(self) -> None:
        self.app.push_screen(EvalJobForm(self.ctx), self._start)

    def action_new_optimize(self) -> None:
        self.app.push_screen(OptimizeJobForm(self.ctx), self._start)

    def action_new_mine(self) -> None:
        self.app.push_screen(MineJobForm(self.ctx), self._start)

    def action_new_finetune(self) -> None:
        self.app.push_screen(FinetuneJobForm(self.ctx), self._start)

    def action_new_pipeline(self) -> None:
        self.app.push_screen(PipelineJobForm(self.ctx), self._start)

    def _start(self, request: JobRequest | None) -> None:
        if request is not None:
            self._start_in_thread(request)

    @work(thread=True, group="jobs-start", exit_on_error=False)
    def _start_in_thread(self, request: JobRequest) -> None:
        store = Store(self.ctx.store.path)  # its own connection: the refresh thread may be reading
        try:
            for warning in held_out_warnings(store, request.argv):
                self.app.call_from_thread(self.notify, warning, severity="warning", timeout=15)
            job_id = start_job(store, request.kind, request.argv, request.title)
        except JobError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        finally:
            store.close()
        self.app.call_from_thread(self._started, job_id)

    def _started(self, job_id: int) -> None:
        self.notify(f"started job {job_id}")
        if job_id in self.jobs:  # a refresh that read after the insert has listed it already
            self.select(job_id)
        else:
            self._select_when_listed = job_id
        self.action_refresh()

    def action_cancel_job(self) -> None:
        job = self.jobs.get(self.selected) if self.selected is not None else None
        if job is None or not job.active:
            self.notify("no running job selected", severity="warning")
            return
        self._cancel_in_thread(job.id)

    @work(thread=True, group="jobs-cancel", exit_on_error=False)
    def _cancel_in_thread(self, job_id: int) -> None:
        store = Store(self.ctx.store.path)
        try:
            job = cancel_job(store, job_id)
        except JobError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="warning")
            return
        finally:
            store.close()
        message = f"job {job_id} {job.status}" if not job.active else f"job {job_id}: asked to stop"
        self.app.call_from_thread(self.notify, message)
        self.app.call_from_thread(self.action_refresh)


def _style(status: str) -> str:
    return STATUS_STYLE.get(status, "")


def _cells(job: Job) -> tuple[str | Text, ...]:
    started = (job.started_at or "")[:19].replace("T", " ") or "-"
    return (
        str(job.id),
        job.kind,
        job.title,
        Text(job.status, style=_style(job.status)),
        progress_text(job.progress_done, job.progress_total, width=20),
        started,
    )


SCREEN = JobsScreen
