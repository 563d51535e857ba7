"""Moving through recorded steps: the keys and the jump dialog the replay and compare screens share."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class JumpDialog(ModalScreen[int | None]):
    """Ask for a step number."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    DEFAULT_CSS = """
    JumpDialog { align: center middle; }
    JumpDialog > Vertical { width: 40; height: auto; border: thick $accent; padding: 1 2; background: $surface; }
    """

    def __init__(self, last: int) -> None:
        super().__init__()
        self.last = last

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Jump to step (0-{self.last})")
            yield Input(placeholder="step", type="integer", id="jump-input")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        try:
            value = int(event.value)
        except ValueError:
            self.notify("a step number, please", severity="error")
            return
        self.dismiss(max(0, min(self.last, value)))


def stepping_bindings(prefix: str) -> list[Binding]:
    """The keys that move through recorded steps, as the replay and compare screens share them.
    They take priority over the panes' own scrolling (the focused log would eat home/end)."""
    return [
        Binding("left", "move(-1)", "Prev", id=f"{prefix}-prev", priority=True),
        Binding("right", "move(1)", "Next", id=f"{prefix}-next", priority=True),
        Binding("pageup", "move(-10)", "-10", show=False, id=f"{prefix}-back10", priority=True),
        Binding("pagedown", "move(10)", "+10", show=False, id=f"{prefix}-fwd10", priority=True),
        Binding("home", "go(0)", "First", show=False, id=f"{prefix}-first", priority=True),
        Binding("end", "go(-1)", "Last", show=False, id=f"{prefix}-last", priority=True),
        Binding("g", "jump", "Jump", id=f"{prefix}-jump", tooltip="Jump to a step number"),
    ]
