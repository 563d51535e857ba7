"""The "new evaluation job" form: fields as a user types them, checked before anything starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from automem.jobs import JobError, eval_job_argv
from automem.tui.context import TuiContext


@dataclass(frozen=True)
class JobRequest:
    kind: str
    argv: list[str]
    title: str


#: (input id, label, placeholder) of the text fields, in form order
FIELDS = (
    ("job-tasks", "tasks", "the game's default (comma-separate several)"),
    ("job-seeds", "seeds", "e.g. 42-51 or 1,3,5"),
    ("job-episodes", "episodes per task", "all seeds"),
    ("job-max-steps", "max steps", "per episode"),
    ("job-workers", "workers", "episodes in parallel"),
    ("job-structure", "structure", "the game's built-in"),
    ("job-engine", "engine", "spec or profile"),
    ("job-run-name", "run name", "generated (reuse one to resume)"),
)


class EvalJobForm(ModalScreen[JobRequest | None]):
    """Dismisses with the job to start, or None when closed."""

    DEFAULT_CSS = """
    EvalJobForm { align: center middle; }
    EvalJobForm #job-form { width: 84; height: auto; border: thick $primary; background: $surface; padding: 1 2; }
    EvalJobForm #job-form-title { text-style: bold; margin-bottom: 1; }
    EvalJobForm Grid { grid-size: 2; grid-columns: 20 1fr; grid-rows: 3; height: auto; }
    EvalJobForm Grid Label { padding: 1 0; }
    EvalJobForm #job-form-error { color: $error; height: auto; margin-top: 1; }
    EvalJobForm #job-form-buttons { height: auto; align-horizontal: right; margin-top: 1; }
    EvalJobForm #job-form-buttons Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "close", "Close", id="job-form-close")]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx

    def compose(self) -> ComposeResult:
        from automem.games import game_names

        defaults = {
            "job-seeds": "42-43",
            "job-max-steps": "20",
            "job-workers": "1",
            "job-structure": default_structure(self.ctx),
            "job-engine": self.ctx.engine_spec,
        }
        games = game_names()
        with Vertical(id="job-form"):
            yield Static("New evaluation job", id="job-form-title")
            with Grid():
                yield Label("game")
                yield Select(
                    [(g, g) for g in games],
                    value=self.ctx.game if self.ctx.game in games else games[0],
                    allow_blank=False,
                    id="job-game",
                )
                for field_id, label, placeholder in FIELDS:
                    yield Label(label)
                    yield Input(defaults.get(field_id, ""), placeholder=placeholder, id=field_id)
            yield Static("", id="job-form-error")
            with Horizontal(id="job-form-buttons"):
                yield Button("Cancel", id="job-form-cancel")
                yield Button("Start", variant="primary", id="job-start")

    def on_mount(self) -> None:
        self.query_one("#job-seeds", Input).focus()

    def value(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "job-start":
            self.submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.submit()

    def action_close(self) -> None:
        self.dismiss(None)

    def submit(self) -> None:
        game = str(self.query_one("#job-game", Select).value)
        try:
            argv = eval_job_argv(
                game=game,
                tasks=self.value("job-tasks"),
                seeds=self.value("job-seeds"),
                episodes_per_task=self.value("job-episodes"),
                max_steps=self.value("job-max-steps"),
                workers=self.value("job-workers"),
                structure=_absolute(self.value("job-structure")),
                engine=self.value("job-engine"),
                run_name=self.value("job-run-name"),
                db=self.ctx.store.path,
            )
        except JobError as exc:
            self.query_one("#job-form-error", Static).update(f"✗ {exc}")
            return
        name = self.value("job-run-name").strip()
        title = name or f"{game} {self.value('job-structure').strip() or 'default'} seeds {self.value('job-seeds')}"
        self.dismiss(JobRequest(kind="eval", argv=argv, title=title.strip()))


def default_structure(ctx: TuiContext) -> str:
    """What the form proposes: the structure chosen in the TUI, by name when it is a built-in.

    An edited structure exists only in the store, so it is written out as a file the job can load.
    """
    from automem.memory.structure import StructureError, builtin_names, load_builtin

    chosen = ctx.structure
    if chosen is None or chosen.game not in (None, ctx.game):
        return ""
    if chosen.name in builtin_names():
        try:
            if load_builtin(chosen.name).id == chosen.id:
                return chosen.name
        except StructureError:
            pass
    path = ctx.store.path.parent / "jobs" / "structures" / f"{chosen.id}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(chosen.to_yaml(), encoding="utf-8")
    return str(path)


def _absolute(spec: str) -> str:
    # the job may run from another directory than the one a relative path was typed in
    spec = spec.strip()
    return str(Path(spec).resolve()) if spec.endswith((".yaml", ".yml")) else spec
