"""What a helper is: typed parameters, the games it supports, and one call per step.

A helper reads the step (the text observation, the game's typed state, what the last action
earned) and returns notes for the prompt. It may keep memory files, but only through
``HelperMemory``: the folder's trusted path (confined to the episode's folder, within each file's
caps), and every change is a memory operation with source ``helper``, stored and replayed like the
model's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from automem.games.base import Game, GameState
from automem.memory.folder import MemoryFolder
from automem.memory.ops import OpResult, split_lines


class HelperParams(BaseModel):
    """Base of a helper's parameters: unknown names are refused, values are checked against their
    types and bounds (``"6"`` still reads as 6, as a hand-edited YAML or a critic's patch may write it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(HelperParams):
    pass


class HelperMemory:
    """The trusted way a helper changes memory files; collects what it did as operation results."""

    def __init__(self, folder: MemoryFolder) -> None:
        self.folder = folder
        self.results: list[tuple[str, OpResult]] = []  # (helper name, result), in order

    def read(self, path: str) -> str | None:
        return self.folder.read_text(path)

    def read_only(self, path: str) -> bool:
        return self.folder.file_limits(path).read_only

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.folder.listing()]

    def write(self, helper: str, path: str, text: str) -> OpResult | None:
        """Write ``text`` (oldest lines dropped to fit the file's caps); None when nothing changed."""
        limits = self.folder.file_limits(path)
        lines = split_lines(text)
        while lines and (len(lines) > limits.max_lines or len("\n".join(lines)) > limits.max_chars):
            lines = lines[1:]
        text = "\n".join(lines)
        if text == (self.read(path) or "") and self.read(path) is not None:
            return None  # an unchanged file is no operation: it would only count as a redundant write
        result = self.folder.write_text_trusted(path, text)
        self.results.append((helper, result))
        return result

    def take(self) -> list[tuple[str, OpResult]]:
        out, self.results = self.results, []
        return out


@dataclass
class HelperContext:
    """One step as helpers see it. ``state`` is built on first use and shared by all helpers."""

    game: Game
    observation: str
    step: int
    last_action: str | None
    last_reward: float
    memory: HelperMemory
    extra: dict[str, object] = field(default_factory=dict)

    @cached_property
    def state(self) -> GameState:
        return self.game.state()


class Helper:
    """Subclass this (or match it) to add a helper; register it under ``automem.helpers``."""

    name: ClassVar[str]
    #: games it supports; empty means every game that gives a typed state
    games: ClassVar[tuple[str, ...]] = ()
    #: what it adds to the prompt, one sentence (the catalogue, the critic and `automem helpers`)
    description: ClassVar[str] = ""
    #: which memory files it writes and how; empty when it only adds notes
    writes: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams
    params: BaseModel  # a subclass narrows it to its own Params

    def __init__(self, params: BaseModel | None = None) -> None:
        self.params = params if params is not None else self.Params()

    def step(self, ctx: HelperContext) -> list[str]:
        """Notes for this step's prompt (may be empty); may write memory through ``ctx.memory``."""
        raise NotImplementedError


def direction_word(dx: int, dy: int) -> str:
    """``3 east, 1 south``; ``here`` for no offset (north is up, y grows southwards)."""
    parts = []
    if dy:
        parts.append(f"{abs(dy)} {'south' if dy > 0 else 'north'}")
    if dx:
        parts.append(f"{abs(dx)} {'east' if dx > 0 else 'west'}")
    return ", ".join(parts) or "here"


def move_name(state: GameState, dx: int, dy: int) -> str | None:
    """The game's action that moves one step by (dx, dy), if it has one."""
    return next((name for name, offset in state.moves.items() if offset == (dx, dy)), None)
