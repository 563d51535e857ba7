"""The "new job" forms (an evaluation, an optimization, mining a dataset, fine-tuning a specialist):
fields as a user types them, checked before anything starts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from automem.jobs import (
    JobError,
    eval_job_argv,
    finetune_job_argv,
    mine_job_argv,
    optimize_job_argv,
    pipeline_job_argv,
)
from automem.tui.context import TuiContext


@dataclass(frozen=True)
class JobRequest:
    kind: str
    argv: list[str]
    title: str


@dataclass(frozen=True)
class FormField:
    """One text field: its input id, label and placeholder, and the argv builder's keyword it fills."""

    id: str
    label: str
    placeholder: str
    arg: str
    #: a structure spec: a relative YAML path is made absolute, the job may run from elsewhere
    structure: bool = False


class JobForm(ModalScreen[JobRequest | None]):
    """A job's fields as a user types them (a game choice, then text fields), checked by the job's argv
    builder before anything starts; dismisses with the job to start, or None when closed.

    A subclass names the job (HEADING, KIND), its FIELDS, the BUILD function that checks them and
    returns the CLI arguments (JobError for a wrong one), its defaults and its title.
    """

    DEFAULT_CSS = """
    JobForm { align: center middle; }
    JobForm #job-form {
        width: 84; height: auto; max-height: 100%; overflow-y: auto;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    JobForm #job-form-title { text-style: bold; margin-bottom: 1; }
    JobForm Grid { grid-size: 2; grid-columns: 20 1fr; grid-rows: 3; height: auto; }
    JobForm Grid Label { padding: 1 0; }
    JobForm #job-form-error { color: $error; height: auto; margin-top: 1; }
    JobForm #job-form-buttons { height: auto; align-horizontal: right; margin-top: 1; }
    JobForm #job-form-buttons Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "close", "Close", id="job-form-close")]
    HEADING: ClassVar[str] = "New job"
    KIND: ClassVar[str] = ""
    FIELDS: ClassVar[tuple[FormField, ...]] = ()
    #: whether the job plays a game (a game choice heads the form and goes to BUILD)
    GAME: ClassVar[bool] = True
    #: the argv builder: the game and every field's value by its ``arg`` keyword, plus ``db``
    BUILD: ClassVar[Callable[..., list[str]]]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx

    def defaults(self) -> dict[str, str]:
        """Initial values by input id."""
        return {}

    def job_title(self, game: str) -> str:
        """The job's title in the jobs table (the run name when one was given)."""
        return self.value("job-run-name").strip()

    def compose(self) -> ComposeResult:
        from automem.games import game_names

        defaults = self.defaults()
        games = game_names()
        with Vertical(id="job-form"):
            yield Static(self.HEADING, id="job-form-title")
            with Grid():
                if self.GAME:
                    yield Label("game")
                    yield Select(
                        [(g, g) for g in games],
                        value=self.ctx.game if self.ctx.game in games else games[0],
                        allow_blank=False,
                        id="job-game",
                    )
                for field in self.FIELDS:
                    yield Label(field.label)
                    yield Input(defaults.get(field.id, ""), placeholder=field.placeholder, id=field.id)
            yield Static("", id="job-form-error")
            with Horizontal(id="job-form-buttons"):
                yield Button("Cancel", id="job-form-cancel")
                yield Button("Start", variant="primary", id="job-start")

    def on_mount(self) -> None:
        # the first field a person changes: the seeds of a game job, else the form's first field
        first = "job-seeds" if self.GAME else self.FIELDS[0].id
        self.query_one(f"#{first}", Input).focus()

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
        game = str(self.query_one("#job-game", Select).value) if self.GAME else ""
        values = {f.arg: _absolute(self.value(f.id)) if f.structure else self.value(f.id) for f in self.FIELDS}
        if self.GAME:
            values["game"] = game
        try:
            argv = type(self).BUILD(db=self.ctx.store.path, **values)
        except JobError as exc:
            self.query_one("#job-form-error", Static).update(f"✗ {exc}")
            return
        self.dismiss(JobRequest(kind=self.KIND, argv=argv, title=self.job_title(game).strip()))


_SEEDS = FormField("job-seeds", "seeds", "e.g. 42-51 or 1,3,5", "seeds")
_TASKS = FormField("job-tasks", "tasks", "the game's default (comma-separate several)", "tasks")
_MAX_STEPS = FormField("job-max-steps", "max steps", "per episode", "max_steps")
_WORKERS = FormField("job-workers", "workers", "episodes in parallel", "workers")
_RUN_NAME = FormField("job-run-name", "run name", "generated (reuse one to resume)", "run_name")


class EvalJobForm(JobForm):
    """A new ``automem eval`` job."""

    HEADING = "New evaluation job"
    KIND = "eval"
    FIELDS = (
        _TASKS,
        _SEEDS,
        FormField("job-episodes", "episodes per task", "all seeds", "episodes_per_task"),
        _MAX_STEPS,
        _WORKERS,
        FormField("job-structure", "structure", "the game's built-in", "structure", structure=True),
        FormField("job-engine", "engine", "spec or profile", "engine"),
        _RUN_NAME,
    )
    BUILD = staticmethod(eval_job_argv)

    def defaults(self) -> dict[str, str]:
        return {
            "job-seeds": "42-43",
            "job-max-steps": "20",
            "job-workers": "1",
            "job-structure": default_structure(self.ctx),
            "job-engine": self.ctx.engine_spec,
        }

    def job_title(self, game: str) -> str:
        structure = self.value("job-structure").strip() or "default"
        return super().job_title(game) or f"{game} {structure} seeds {self.value('job-seeds')}"


class OptimizeJobForm(JobForm):
    """A new ``automem optimize`` job (loop 1): a critic revises the structure, kept when it scores better."""

    HEADING = "New optimization (loop 1)"
    KIND = "optimize"
    FIELDS = (
        _SEEDS,
        _TASKS,
        FormField(
            "job-from",
            "from structure",
            "the game's built-in, a YAML file or a stored id",
            "from_structure",
            structure=True,
        ),
        FormField("job-agent-engine", "agent engine", "plays the episodes: spec or profile", "agent_engine"),
        FormField("job-critic", "critic", "heuristic, [whole:]engine spec or profile, command:PROGRAM", "critic"),
        FormField("job-iterations", "iterations", "critic rounds", "iterations"),
        FormField("job-candidates", "candidates", "proposals per round", "candidates"),
        _MAX_STEPS,
        _WORKERS,
        _RUN_NAME,
    )
    BUILD = staticmethod(optimize_job_argv)

    def defaults(self) -> dict[str, str]:
        return {
            "job-seeds": "42-43",
            "job-from": default_structure(self.ctx),
            "job-agent-engine": self.ctx.engine_spec,
            "job-critic": "heuristic",
            "job-iterations": "3",
            "job-candidates": "2",
            "job-max-steps": "20",
            "job-workers": "1",
        }

    def job_title(self, game: str) -> str:
        start = self.value("job-from").strip() or "default"
        critic = self.value("job-critic").strip() or "heuristic"
        return super().job_title(game) or f"optimize {game} {start} · critic {critic}"


class MineJobForm(JobForm):
    """A new ``automem mine`` job (loop 2): the memory decisions worth reinforcing, as a dataset."""

    HEADING = "Mine a dataset (loop 2)"
    KIND = "mine"
    GAME = False
    FIELDS = (
        FormField("job-runs", "runs", "recorded runs to mine (comma-separate several)", "runs"),
        FormField("job-out", "dataset name", "letters, digits, _ . -", "out"),
        FormField("job-min-score", "min score", "signals a candidate must reach", "min_score"),
        FormField("job-judge", "judge", "optional: an engine spec or profile that rates 1-5", "judge"),
    )
    BUILD = staticmethod(mine_job_argv)

    def defaults(self) -> dict[str, str]:
        # the newest run with a finished episode: an interrupted evaluation is still worth mining
        newest = self.ctx.store.newest_run_with_finished_episode()
        from automem.finetune.mine import MineConfig

        min_score = MineConfig.__dataclass_fields__["min_score"].default
        return {"job-runs": newest or "", "job-min-score": f"{min_score:g}"}

    def job_title(self, game: str) -> str:
        return f"mine {self.value('job-runs').strip()} → {self.value('job-out').strip()}"


class FinetuneJobForm(JobForm):
    """A new ``automem finetune`` job (loop 2): a LoRA memory specialist trained on a mined dataset."""

    HEADING = "Fine-tune a memory specialist (loop 2)"
    KIND = "finetune"
    GAME = False
    FIELDS = (
        FormField("job-dataset", "dataset", "made by a mine job", "dataset"),
        FormField("job-out", "name", "of the training run and its adapter", "out"),
        FormField("job-base", "base model", "bundled, a .gguf file or a model folder", "base"),
        FormField("job-backend", "backend", "auto (Unsloth on a CUDA GPU, else peft), unsloth, peft", "backend"),
        FormField("job-lora-r", "LoRA r", "rank", "lora_r"),
        FormField("job-lora-alpha", "LoRA alpha", "scale = alpha / r", "lora_alpha"),
        FormField("job-epochs", "epochs", "passes over the training set", "epochs"),
        FormField("job-lr", "learning rate", "e.g. 2e-4", "lr"),
        FormField("job-max-steps", "max steps", "optional cap on optimizer steps", "max_steps"),
    )
    BUILD = staticmethod(finetune_job_argv)

    def defaults(self) -> dict[str, str]:
        from automem.finetune.train import TrainConfig

        newest = self.ctx.store.newest_dataset_name()
        # the library's defaults, so the form, the CLI (tests/test_cli_defaults.py) and TrainConfig agree
        recipe = TrainConfig(dataset="", base="bundled", out="")
        return {
            "job-dataset": newest or "",
            "job-base": recipe.base,
            "job-backend": recipe.backend,
            "job-lora-r": str(recipe.lora_r),
            "job-lora-alpha": str(recipe.lora_alpha),
            "job-epochs": f"{recipe.epochs:g}",
            "job-lr": f"{recipe.lr:.0e}".replace("e-0", "e-"),  # 2e-4, as people write it
        }

    def job_title(self, game: str) -> str:
        return f"finetune {self.value('job-dataset').strip()} → {self.value('job-out').strip()}"


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


class PipelineJobForm(JobForm):
    """A new ``automem pipeline`` job: the whole protocol from a pipeline file, each stage a job."""

    HEADING = "Run the protocol (pipeline)"
    KIND = "pipeline"
    GAME = False
    FIELDS = (FormField("job-file", "pipeline file", "a YAML file, or crafter / minihack / nethack", "file"),)
    BUILD = staticmethod(pipeline_job_argv)

    def defaults(self) -> dict[str, str]:
        return {"job-file": "crafter"}

    def job_title(self, game: str) -> str:
        return f"pipeline {self.value('job-file').strip()}"
