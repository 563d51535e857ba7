"""The play screen's dialogs: a new episode's settings, and editing one memory file."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, TextArea

from automem.tui.context import TuiContext

_DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 90; height: auto; max-height: 90%; border: thick $accent; padding: 1 2; background: $surface;
}}
{name} Grid {{ grid-size: 2; grid-columns: 14 1fr; grid-rows: 3; height: auto; }}
{name} Grid > Label {{ padding: 1 0; }}
{name} .buttons {{ height: 3; align-horizontal: right; margin-top: 1; }}
{name} #dialog-error {{ color: $error; height: auto; }}
{name} TextArea {{ height: 20; }}
"""


class NewEpisodeDialog(ModalScreen[dict[str, Any] | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    DEFAULT_CSS = _DIALOG_CSS.format(name="NewEpisodeDialog")

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx

    def compose(self) -> ComposeResult:
        from automem.games import game_names

        structure = self.ctx.structure.name if self.ctx.structure is not None else ""
        with Vertical():
            yield Label("[b]New episode[/b]")
            with Grid():
                yield Label("game")
                yield Select([(g, g) for g in game_names()], value=self.ctx.game, allow_blank=False, id="new-game")
                yield Label("task")
                yield Input(self.ctx.task or "", placeholder="default task", id="new-task")
                yield Label("seed")
                yield Input(str(self.ctx.seed + 1), type="integer", id="new-seed")
                yield Label("structure")
                yield Input(structure, placeholder="GAME-v0, a built-in name or a YAML file", id="new-structure")
                yield Label("engine")
                yield Input(self.ctx.engine_spec, id="new-engine")
            yield Label("", id="dialog-error")
            with Horizontal(classes="buttons"):
                yield Button("Start", variant="primary", id="new-start")
                yield Button("Cancel", id="new-cancel")

    @on(Button.Pressed, "#new-cancel")
    def cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    @on(Button.Pressed, "#new-start")
    def start(self) -> None:
        from automem.games import GameError, get_game_class
        from automem.memory.structure import StructureError
        from automem.runs.run import check_structure_fits, find_structure

        game = str(self.query_one("#new-game", Select).value)
        task = self.query_one("#new-task", Input).value.strip()
        seed_text = self.query_one("#new-seed", Input).value.strip()
        spec = self.query_one("#new-structure", Input).value.strip()
        engine = self.query_one("#new-engine", Input).value.strip() or "llamacpp"
        error = self.query_one("#dialog-error", Label)
        try:
            seed = int(seed_text)
        except ValueError:
            error.update(f"seed must be a whole number, not {seed_text!r}")
            return
        try:
            cls = get_game_class(game)
            if task and cls.tasks and task not in cls.tasks and game != "minihack":
                raise GameError(f"unknown task {task!r} for {game}; tasks: {', '.join(cls.tasks)}")
            structure = None
            current = self.ctx.structure
            if spec and not (current is not None and spec == current.name):
                structure = find_structure(spec, self.ctx.store)
                check_structure_fits(structure, game)
        except (GameError, StructureError) as exc:
            error.update(str(exc))
            return
        self.dismiss({"game": game, "task": task, "seed": seed, "structure": structure, "engine": engine})


class EditFileDialog(ModalScreen[str | None]):
    """Edit one memory file; saving records a human operation."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("ctrl+s", "save", "Save", priority=True)]
    DEFAULT_CSS = _DIALOG_CSS.format(name="EditFileDialog")

    def __init__(self, path: str, text: str) -> None:
        super().__init__()
        self.path = path
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"[b]Edit {self.path}[/b]  (ctrl+s saves as your operation, escape cancels)", markup=True)
            yield TextArea(self.text, id="edit-text")
            with Horizontal(classes="buttons"):
                yield Button("Save", variant="primary", id="edit-save")
                yield Button("Cancel", id="edit-cancel")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    @on(Button.Pressed, "#edit-save")
    def action_save(self) -> None:
        self.dismiss(self.query_one(TextArea).text)

    @on(Button.Pressed, "#edit-cancel")
    def cancel(self) -> None:
        self.dismiss(None)
