"""The three panes both the play and the replay screen show: game, memory, actions."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from automem.tui.widgets.actions_pane import ActionsPane
from automem.tui.widgets.game_view import GameView
from automem.tui.widgets.memory_pane import MemoryPane

#: the memory pane's file list with sizes, and the actions' messages, need at least these widths
MEMORY_MIN, ACTIONS_MIN = 30, 40
#: the game pane's border and padding around the picture
_GAME_FRAME = 4


class EpisodePanes(Horizontal):
    """Game, memory and actions side by side, the width shared by what each holds: the game pane
    as wide as its picture (Crafter's 9x7 grid with its side text needs far fewer columns than
    NetHack's 80-column map; the observation below wraps to it), the rest to memory and, twice
    as much, to the actions' long messages. Where the two would get less than their minimum, the
    panes stack."""

    DEFAULT_CSS = """
    EpisodePanes { height: 1fr; }
    EpisodePanes > .pane { border: round $primary 50%; border-title-color: $text; padding: 0 1; }
    EpisodePanes > .pane:focus-within { border: round $accent; }
    EpisodePanes > #game-pane { width: 44; }
    EpisodePanes > #memory-pane { width: 1fr; min-width: 30; }
    EpisodePanes > #actions-pane { width: 2fr; min-width: 40; }
    EpisodePanes #observation { height: 1fr; color: $text-muted; margin-top: 1; }
    EpisodePanes.-narrow { layout: vertical; }
    EpisodePanes.-narrow > .pane { width: 1fr; max-width: 100%; min-width: 0; height: 1fr; }
    EpisodePanes.-narrow > #game-pane { height: auto; max-height: 40%; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._picture_width = 40

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
        self._share()

    def on_game_view_sized(self, message: GameView.Sized) -> None:
        self._picture_width = max(message.width, 36)
        self._share()

    def _share(self) -> None:
        game_width = self._picture_width + _GAME_FRAME
        narrow = self.app.size.width - game_width < MEMORY_MIN + ACTIONS_MIN
        self.set_class(narrow, "-narrow")
        # an inline width outranks the stylesheet: stacked, the game pane takes the whole width
        self.query_one("#game-pane").styles.width = "1fr" if narrow else game_width

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
