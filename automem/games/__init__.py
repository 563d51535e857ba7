"""Game registry: adapters are found through the ``automem.games`` entry-point group.

A third-party package adds a game by declaring an entry point, no edit here. The built-ins are
also listed directly so a source checkout that was never pip-installed still finds them.
"""

from __future__ import annotations

from automem.games.base import ActionSpec, Frame, Game, GameError, GameState, StepResult, Thing, UnknownAction
from automem.plugins import load, registered

__all__ = [
    "ActionSpec",
    "Frame",
    "Game",
    "GameError",
    "GameState",
    "StepResult",
    "Thing",
    "UnknownAction",
    "game_names",
    "get_game_class",
    "make_game",
]

_BUILTIN = {
    "crafter": "automem.games.crafter:CrafterGame",
    "minihack": "automem.games.minihack:MiniHackGame",
    "nethack": "automem.games.nethack:NetHackGame",
}


def _targets() -> dict[str, str]:
    return registered("automem.games", _BUILTIN)


def game_names() -> list[str]:
    return sorted(_targets())


def get_game_class(name: str) -> type[Game]:
    targets = _targets()
    if name not in targets:
        raise GameError(f"unknown game {name!r}; choose one of: {', '.join(sorted(targets))}")
    return load(targets[name])


def make_game(name: str, task: str | None = None) -> Game:
    """Build a game; unknown names and tasks raise GameError with the choices."""
    cls = get_game_class(name)
    return cls(task=task)
