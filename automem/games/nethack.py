"""NetHack through NLE, with the full keyboard so the agent can answer every prompt.

Progression is BALROG's: each dungeon depth and experience level a human game reached is worth
the share of such human games that went on to ascend; an episode scores the best milestone it
reached. See docs/games.md for the table's source.
"""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import nle  # noqa: F401 - registers the NetHack envs with gymnasium
from nle import nethack

from automem.games.base import GameError
from automem.games.nle_common import (
    ALL_KEYS,
    KEY_ACTIONS,
    OBSERVATION_KEYS,
    WORD_ACTIONS,
    NLEGame,
    Screen,
    make_registered_env,
    screen_rules,
)

# BALROG's NetHack progression (balrog/environments/nle/achievements.json): for each milestone,
# the probability that a human game reaching it ended in an ascension. Dlvl:1 and Xp:1 are 0
# because every game starts there.
DLVL_PROGRESS: tuple[float, ...] = (
    0.0,  # Dlvl:1
    0.015392269075361172,
    0.017539535798967013,
    0.021221378364235505,
    0.026482449457437766,  # Dlvl:5
    0.035428686118173014,
    0.04846098359243788,
    0.0695812141543123,
    0.09770935198701912,
    0.12558597019922987,  # Dlvl:10
    0.1612677822768481,
    0.20612854836308672,
    0.2566039887664476,
    0.29247245425293333,
    0.30881240110986263,  # Dlvl:15
    0.3249071349317381,
    0.34007883702829594,
    0.3526455577544006,
    0.3654881095022441,
    0.37895667923256743,  # Dlvl:20
    0.39293747679675045,
    0.40832255575976223,
    0.4258360748858015,
    0.445181408701678,
    0.46637631565303056,  # Dlvl:25
    0.5067605633802816,
    0.5543572044866264,
    0.6015648510382184,
    0.6465049415992812,
    0.6913110342176086,  # Dlvl:30
    0.7101094299371864,
    0.7176456494828894,
    0.7232124894378948,
    0.7284405900470092,
    0.7327761924174481,  # Dlvl:35
    0.7368528917489855,
    0.7421458943978863,
    0.7471321695760599,
    0.753731343283582,
    0.7610398408061306,  # Dlvl:40
    0.76740810314648,
    0.7725338491295938,
    0.7771626297577855,
    0.7812567949554251,
    0.7858986134802957,  # Dlvl:45
    0.7890256738822022,
    0.7929718875502008,
    0.7967408445768355,
    0.8018467495718222,
    0.8067964442444019,  # Dlvl:50
)
XL_PROGRESS: tuple[float, ...] = (
    0.0,  # Xp:1
    0.01847840456172601,
    0.02081163581974355,
    0.024160136550546978,
    0.029108986017138745,  # Xp:5
    0.036887590648350246,
    0.0507583712345433,
    0.07453595273884014,
    0.11704996473565571,
    0.17909953770432294,  # Xp:10
    0.25480449090205187,
    0.33264942385807844,
    0.41442590519821954,
    0.49403949403949404,
    0.5778823703813513,  # Xp:15
    0.6261221999477034,
    0.656281764586298,
    0.6810218550418937,
    0.7015328516442704,
    0.7174494081710576,  # Xp:20
    0.7286977843944303,
    0.7371004909327723,
    0.7443446629532795,
    0.7513449678519879,
    0.7585537128343045,  # Xp:25
    0.7642151855635002,
    0.7703376822716808,
    0.7759810263044415,
    0.7783345263660224,
    0.7804561949196475,  # Xp:30
)


def _lookup(table: tuple[float, ...], level: int) -> float:
    if level < 1:
        return 0.0
    return table[min(level, len(table)) - 1]


def balrog_progression(max_depth: int, max_xl: int, ascended: bool = False) -> float:
    """BALROG's NetHack progression in percent for the deepest level and highest XL reached."""
    if ascended:
        return 100.0
    return 100.0 * max(_lookup(DLVL_PROGRESS, max_depth), _lookup(XL_PROGRESS, max_xl))


_TASKS = (
    "NetHackScore-v0",
    "NetHack-v0",
    "NetHackStaircase-v0",
    "NetHackStaircasePet-v0",
    "NetHackOracle-v0",
    "NetHackGold-v0",
    "NetHackEat-v0",
    "NetHackScout-v0",
)


def _resolve_task(task: str) -> str:
    wanted = task.lower()
    for t in _TASKS:
        if wanted in (t.lower(), t.lower().removesuffix("-v0")):
            return t
    if "challenge" in wanted:
        raise GameError(
            "NetHackChallenge-v0 refuses seeding, so its episodes cannot be reproduced; "
            "use NetHackScore-v0 (same game, seedable)"
        )
    raise GameError(f"unknown nethack task {task!r}; choose one of: {', '.join(_TASKS)}")


class NetHackGame(NLEGame):
    name: ClassVar[str] = "nethack"
    tasks: ClassVar[tuple[str, ...]] = _TASKS
    default_task: ClassVar[str] = "NetHackScore-v0"

    def __init__(
        self,
        task: str | None = None,
        *,
        character: str = "@",
        max_episode_steps: int = 100_000,
        ttyrec_dir: str | None = None,
    ) -> None:
        """``character`` is NLE's role-race-alignment-gender string; "@" picks one at random from
        the seed, as BALROG does. ``max_episode_steps`` counts key presses, automatic --More--
        presses included (BALROG: 100000)."""
        self._env_id = _resolve_task(task or self.default_task)
        self._character = character
        self._max_episode_steps = max_episode_steps
        self._max_depth = 0
        self._max_xl = 0
        self._reached: dict[str, None] = {}  # milestones in the order reached
        super().__init__(self._env_id, ttyrec_dir=ttyrec_dir)

    def _make_env(self) -> gym.Env:
        return make_registered_env(
            self._env_id,
            actions=ALL_KEYS,
            character=self._character,
            max_episode_steps=self._max_episode_steps,
            observation_keys=OBSERVATION_KEYS,
            # the agent answers every question and menu itself; --More-- is handled by the adapter
            allow_all_yn_questions=True,
            allow_all_modes=True,
            # moon phase and Friday 13th from the seed, not the wall clock: reproducible episodes
            fix_moon_phase=True,
            **self._recording(),
        )

    def _vocabulary(self) -> list[tuple[str, int, str]]:
        return [*WORD_ACTIONS, *KEY_ACTIONS]

    def reset(self, seed: int) -> str:
        self._max_depth = 0
        self._max_xl = 0
        self._reached = {}
        return super().reset(seed)

    def _on_screen(self, screen: Screen) -> None:
        # blstats are zero once the game is over: max() keeps what was reached
        depth = int(screen.blstats[nethack.NLE_BL_DEPTH])
        xl = int(screen.blstats[nethack.NLE_BL_XP])
        if depth > 1:
            self._reached[f"Dlvl:{depth}"] = None
        if xl > 1:
            self._reached[f"Xp:{xl}"] = None
        self._max_depth = max(self._max_depth, depth)
        self._max_xl = max(self._max_xl, xl)

    def progression(self) -> float:
        return balrog_progression(self._max_depth, self._max_xl, ascended=self.ended_reason == "success")

    def achievements(self) -> list[str]:
        """BALROG milestones reached beyond the start (``Dlvl:3``, ``Xp:2``), in order reached."""
        return list(self._reached)

    def rules(self) -> str:
        return (
            "You play NetHack, a roguelike dungeon crawler. Goal: get as deep into the dungeon "
            "(Dlvl) and as high in experience level (Xp) as you can without dying; progress is "
            "measured by the deepest level and the highest experience level reached. Find the "
            "stairs down (>) on each level and use the action down while standing on them. Fight "
            "weak monsters by moving into them, eat when Hungry, pray if HP gets very low "
            "(rarely).\n" + screen_rules()
        )
