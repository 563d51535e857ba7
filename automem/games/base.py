"""The Game protocol every adapter implements.

A game is driven by action *names* (readable words such as ``move_left`` or ``far east``) so the
agent, the grammar and the store never see an environment's integer action ids.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from automem.errors import AutomemError


class GameError(AutomemError):
    """A bad game name, task or option: shown to the user as a one-line error."""


class UnknownAction(GameError):
    """The action name is not in the game's vocabulary."""


@dataclass(frozen=True)
class ActionSpec:
    name: str
    description: str


#: byte i -> the hex digit of its colour (i & 15); bytes.translate runs in C, a genexpr cost 0.5 ms/frame
_HEX_TABLE = bytes((b"0123456789abcdef")[i & 15] for i in range(256))


@dataclass
class Frame:
    """A terminal picture of the game for the TUI and replays.

    ``rows`` are equal-length strings; ``fg`` holds one colour per cell as a 16-colour curses index
    (0 black .. 7 white, 8-15 bright), the palette NetHack itself uses, so every game draws the same way.
    ``side`` carries extra text lines shown beside the picture (vitals, inventory).
    """

    rows: list[str]
    fg: list[list[int]]
    cursor: tuple[int, int] | None = None  # (row, col)
    side: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        # colours as one hex digit per cell: a 24x80 screen stores as 24 short strings, not 1,920 ints
        fg = [bytes(row).translate(_HEX_TABLE).decode("ascii") for row in self.fg]
        return {"rows": self.rows, "fg": fg, "cursor": self.cursor, "side": self.side}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Frame:
        cursor = data.get("cursor")
        return cls(
            rows=list(data["rows"]),
            fg=[[int(c, 16) for c in r] if isinstance(r, str) else list(r) for r in data["fg"]],
            cursor=tuple(cursor) if cursor else None,  # type: ignore[arg-type]
            side=list(data.get("side", [])),
        )


@dataclass
class StepResult:
    observation: str
    reward: float
    done: bool
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Thing:
    """Something the player sees, at an offset from the player (east and south are positive)."""

    kind: str  # "tree", "cow", "stairs down", "monster jackal", "item %" ...
    dx: int
    dy: int
    glyph: str = ""

    def distance(self, diagonal: bool) -> int:
        """Moves to reach it on open ground: king moves where diagonals are allowed, else Manhattan."""
        return max(abs(self.dx), abs(self.dy)) if diagonal else abs(self.dx) + abs(self.dy)


@dataclass(frozen=True, eq=False)
class GameState:
    """What a helper may know about the current step, typed, beside the text observation.

    Every field is a copy taken when the state was built (NLE reuses its arrays between steps), so a
    helper may keep a state across steps. ``local_map`` rows and ``walkable`` share one shape; the
    player stands at ``origin`` (column, row) in them. A game without a map leaves them empty.
    """

    game: str
    step: int = 0  # the game's own clock (Crafter's env step, NetHack's turn counter)
    position: tuple[int, int] | None = None  # (x, y) in the world or level; y grows southwards
    vitals: dict[str, int] = field(default_factory=dict)
    vitals_max: dict[str, int] = field(default_factory=dict)
    conditions: tuple[str, ...] = ()  # "Hungry", "sleeping", ...: words that change what is safe
    inventory: dict[str, int] = field(default_factory=dict)
    local_map: tuple[str, ...] = ()
    walkable: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    origin: tuple[int, int] = (0, 0)
    diagonal: bool = False  # whether the game lets the player move diagonally
    things: tuple[Thing, ...] = ()
    depth: int | None = None  # dungeon level (NetHack, MiniHack); None where the game has none
    achievements: tuple[str, ...] = ()
    facing: tuple[int, int] | None = None  # (dx, dy) of the faced cell (Crafter)
    message: str = ""
    #: movement actions of this game and task by name -> (dx, dy)
    moves: dict[str, tuple[int, int]] = field(default_factory=dict)

    def cell(self, dx: int, dy: int) -> str:
        """The glyph at an offset from the player; a space outside the map."""
        col, row = self.origin[0] + dx, self.origin[1] + dy
        if 0 <= row < len(self.local_map) and 0 <= col < len(self.local_map[row]):
            return self.local_map[row][col]
        return " "

    def can_walk(self, dx: int, dy: int) -> bool:
        col, row = self.origin[0] + dx, self.origin[1] + dy
        rows, cols = self.walkable.shape
        return 0 <= row < rows and 0 <= col < cols and bool(self.walkable[row, col])


class Game(ABC):
    """One running game instance. Not thread-safe; one per episode worker."""

    name: ClassVar[str]
    #: tasks a user can pick with ``--task``; games with one world list just their default
    tasks: ClassVar[tuple[str, ...]]
    default_task: ClassVar[str]

    def __init__(self, task: str | None = None) -> None:
        self.task = task or self.default_task
        self.done = False
        self.ended_reason: str | None = None

    @abstractmethod
    def reset(self, seed: int) -> str:
        """Start a new episode on ``seed``; returns the text observation."""

    @abstractmethod
    def step(self, action: str) -> StepResult:
        """Play one action by name. Raises UnknownAction for a name not in ``actions``."""

    @property
    @abstractmethod
    def actions(self) -> list[ActionSpec]:
        """Legal action names with short descriptions (fixed per game/task)."""

    @abstractmethod
    def observation(self) -> str:
        """The current text observation (what the agent reads)."""

    @abstractmethod
    def progression(self) -> float:
        """Progress in percent, 0..100, BALROG's definition for the game."""

    @abstractmethod
    def achievements(self) -> list[str]:
        """Milestones unlocked so far in this episode (may be empty for games without them)."""

    @abstractmethod
    def frame(self) -> Frame:
        """The terminal picture of the current state."""

    def rules(self) -> str:
        """A short description of the game and its goal for the system prompt."""
        return ""

    def observation_parts(self, observation: str) -> list[str]:
        """The observation's parts in order (what a transcript shows again only when it changed):
        its blank-line separated paragraphs, unless the game's text has blank lines inside a part."""
        return observation.strip().split("\n\n")

    def state(self) -> GameState:
        """The typed state helpers read; a game that has none beyond its text keeps this default."""
        return GameState(game=self.name, achievements=tuple(self.achievements()))

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the environment."""

    def action_names(self) -> list[str]:
        return [a.name for a in self.actions]
