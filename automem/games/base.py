"""The Game protocol every adapter implements.

A game is driven by action *names* (readable words such as ``move_left`` or ``far east``) so the
agent, the grammar and the store never see an environment's integer action ids.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar


class GameError(Exception):
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

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the environment."""

    def action_names(self) -> list[str]:
        return [a.name for a in self.actions]
