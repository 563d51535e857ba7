"""MiniHack: small NetHack tasks, each registered as a gymnasium env.

Each task keeps its own action set and options (a navigation task only moves, Quest tasks have
the full keyboard), as BALROG plays them; the vocabulary is the NetHack one restricted to the
keys the task accepts. Progression is BALROG's: 100 when the task ends successfully, else 0.
"""

from __future__ import annotations

import os
import random
import re
from typing import Any, ClassVar

import gymnasium as gym
import minihack  # noqa: F401 - registers the MiniHack envs with gymnasium
import numpy as np
from minihack.envs import boxohack

from automem.games.base import GameError
from automem.games.nle_common import (
    KEY_ACTIONS,
    OBSERVATION_KEYS,
    WORD_ACTIONS,
    NLEGame,
    make_registered_env,
    screen_rules,
)

#: BALROG's eight MiniHack tasks plus two quick ones; any other registered MiniHack id works too
_TASKS = (
    "Room-5x5",
    "KeyRoom-S5",
    "MazeWalk-9x9",
    "MazeWalk-15x15",
    "Corridor-R3",
    "CorridorBattle-Dark",
    "Quest-Easy",
    "Quest-Medium",
    "Boxoban-Medium",
    "Boxoban-Hard",
)

_ID = re.compile(r"^MiniHack-(?P<short>.+)-v\d+$")

# what to do, by task family (longest matching prefix wins)
_GOALS = {
    "Room": "Reach the staircase down (>) in the room.",
    "Room-Monster": "Reach the staircase down (>); a monster is in the room, fight it or avoid it.",
    "Room-Trap": "Reach the staircase down (>) avoiding the traps (^).",
    "Room-Dark": "Reach the staircase down (>) in a dark room: you only see next to you.",
    "KeyRoom": (
        "Pick up the key (() with pickup, walk next to the locked door of the inner room and "
        "apply the key toward it to open it, then reach the staircase down (>)."
    ),
    "MazeWalk": "Find the staircase down (>) in a maze that is revealed as you explore.",
    "Corridor": (
        "Rooms are joined by corridors (#): explore them to find the staircase down (>). "
        "Closed doors (+) can be opened or kicked; search finds hidden passages."
    ),
    "CorridorBattle": (
        "A pack of monsters waits at the far end: fight them one at a time in the corridor, "
        "then reach the staircase down (>)."
    ),
    "Quest": (
        "Reach the staircase down (>) beyond a river of lava (}). Items lie at the start (a wand "
        "of cold and a frost horn): pick them up, then zap the wand or apply the horn toward "
        "the lava to freeze a path. Monsters may attack."
    ),
    "Boxoban": "Push every boulder (`) onto a fountain ({) (Sokoban); you move only north, south, east, west.",
}


def _registered() -> dict[str, str]:
    """lower-cased short names and full ids -> registered id"""
    found: dict[str, str] = {}
    for env_id in gym.registry:
        m = _ID.match(env_id)
        if m:
            found[m["short"].lower()] = env_id
            found[env_id.lower()] = env_id
    return found


def resolve_task(task: str) -> tuple[str, str]:
    """(short name, registered id) for ``Room-5x5`` or ``MiniHack-Room-5x5-v0``."""
    env_id = _registered().get(task.lower())
    if env_id is None:
        raise GameError(
            f"unknown minihack task {task!r}; choose one of: {', '.join(_TASKS)} (or any registered MiniHack-* id)"
        )
    m = _ID.match(env_id)
    assert m is not None
    return m["short"], env_id


def boxoban_available() -> bool:
    """Boxoban's level files are a separate download that is not part of the minihack wheel."""
    return os.path.isdir(boxohack.LEVELS_PATH)


class MiniHackGame(NLEGame):
    name: ClassVar[str] = "minihack"
    tasks: ClassVar[tuple[str, ...]] = _TASKS
    default_task: ClassVar[str] = "Room-5x5"

    def __init__(
        self, task: str | None = None, *, max_episode_steps: int | None = None, ttyrec_dir: str | None = None
    ) -> None:
        """``max_episode_steps``: None keeps the task's own limit (e.g. 100 for Room-5x5)."""
        short, self._env_id = resolve_task(task or self.default_task)
        if short.startswith("Boxoban") and not boxoban_available():
            raise GameError(
                f"MiniHack task {short} needs the Boxoban level files, which are not installed "
                f"(expected in {boxohack.LEVELS_PATH}); run `python -m "
                "minihack.scripts.download_boxoban_levels` on a machine with network access"
            )
        self._max_episode_steps = max_episode_steps
        super().__init__(short, ttyrec_dir=ttyrec_dir)

    def _make_env(self) -> gym.Env:
        kwargs: dict[str, object] = {
            # Boxoban's success check reads "chars"
            "observation_keys": (*OBSERVATION_KEYS, "chars"),
            "fix_moon_phase": True,  # reproducible: moon phase from the seed, not the date
            **self._recording(),
        }
        if self._max_episode_steps is not None:
            kwargs["max_episode_steps"] = self._max_episode_steps
        try:
            return make_registered_env(self._env_id, **kwargs)
        except ModuleNotFoundError as exc:  # minihack's way of saying level data is missing
            raise GameError(f"MiniHack task {self.task} cannot start: {exc}") from exc

    def _vocabulary(self) -> list[tuple[str, int, str]]:
        words = list(WORD_ACTIONS)
        # item letters only matter where the task lets questions through to the agent;
        # navigation tasks answer (decline) them inside NLE
        if self._unwrapped._allow_all_yn_questions:
            words += KEY_ACTIONS
        return words

    def _reset_env(self, seed: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if not isinstance(self._unwrapped, boxohack.BoxoHack):
            return super()._reset_env(seed)
        # Boxoban picks its level with Python's global random: seed it for this one call and
        # put the caller's random state back
        state = random.getstate()
        random.seed(seed)
        # minihack 1.0.2 on NLE 1.3 checks the goal during reset, before BoxoHack has set it
        self._unwrapped._goal_pos_set = set()
        try:
            return self._unwrapped.reset()
        finally:
            random.setstate(state)

    def progression(self) -> float:
        return 100.0 if self.ended_reason == "success" else 0.0

    def achievements(self) -> list[str]:
        return ["success"] if self.ended_reason == "success" else []

    def rules(self) -> str:
        family = max((k for k in _GOALS if self.task.startswith(k)), key=len, default=None)
        goal = _GOALS[family] if family else "Reach the staircase down (>) unless the message says otherwise."
        limit = self._unwrapped._max_episode_steps
        return (
            f"You play MiniHack task {self.task}, a small NetHack level. Goal: {goal} "
            f"The episode succeeds when the goal is reached and fails on death or after {limit} "
            "actions.\n" + screen_rules(self._unwrapped._allow_all_yn_questions)
        )
