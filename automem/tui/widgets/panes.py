"""The three panes both the play and the replay screen show: game, memory, actions."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from automem.tui.widgets.actions_pane import ActionsPane
from automem.tui.widgets.game_view import GameView
from automem.tui.widgets.memory_pane import MemoryPane

#: below this many columns the panes stack vertically
NARROW = 120


class EpisodePanes(Horizontal):
    DEFAULT_CSS = """
    EpisodePanes { height: 1fr; }
    EpisodePanes > .pane { border: round $primary 50%; border-title-color: $text; padding: 0 1; }
    EpisodePanes > .pane:focus-within { border: round $accent; }
    EpisodePanes > #game-pane { width: auto; min-width: 40; max-width: 55%; }
    EpisodePanes > #memory-pane { width: 1fr; }
    EpisodePanes > #actions-pane { width: 1fr; }
    EpisodePanes #observation { height: 1fr; color: $text-muted; margin-top: 1; }
    EpisodePanes.-narrow { layout: vertical; }
    EpisodePanes.-narrow > .pane { width: 1fr; max-width: 100%; height: 1fr; }
    EpisodePanes.-narrow > #game-pane { height: auto; max-height: 40%; }
    """

    def compose(self) -> ComposeResult:
        with Vertical(id="game-pane", classes="pane") as game:
            game.border_title = "game"
            yield GameView(id="game")
            with VerticalScroll(id="observation"):
                yield Static("", id="observation-text")
        memory = MemoryPane(id="memory-pane")
        memory.add_class("pane")
        memory.border_title = "memory"
        yield memory
        actions = ActionsPane(id="actions-pane")
        actions.add_class("pane")
        actions.border_title = "actions"
        yield actions

    def on_resize(self) -> None:
        self.set_class(self.app.size.width < NARROW, "-narrow")

    @property
    def game(self) -> GameView:
        return self.query_one(GameView)

    @property
    def memory(self) -> MemoryPane:
        return self.query_one(MemoryPane)

    @property
    def actions(self) -> ActionsPane:
        return self.query_one(ActionsPane)

    def show_observation(self, text: str) -> None:
        self.query_one("#observation-text", Static).update(Text(text))  # never parsed as markup
