"""Re-simulation: an episode's recorded actions replayed from its seed in a fresh game.

A stored episode holds, for every step, the observation the agent saw, the action it chose and
what followed (reward, done, progression, achievements). Playing the same actions from the same
seed must give the same steps; the first step where it does not is reported. Zero differences
prove the seeding (the whole episode can be rebuilt from its seed and its actions) and let
exports that need the live environment, a ttyrec, be made after the fact.
"""

from __future__ import annotations

import difflib
import inspect
import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from automem.errors import AutomemError
from automem.games import Game, GameError, get_game_class
from automem.store.db import Store


class VerifyError(AutomemError):
    """An episode that cannot be re-simulated (unknown id, no game, an env that will not start)."""


@dataclass(frozen=True)
class Divergence:
    """The first recorded fact that the fresh game did not reproduce."""

    step: int
    what: str  # observation | action | reward | done | progression | achievements
    recorded: str
    replayed: str

    def describe(self, context_lines: int = 12) -> str:
        head = f"step {self.step}: the {self.what} differs"
        if self.what != "observation":
            return f"{head} (recorded {self.recorded}, replayed {self.replayed})"
        diff = difflib.unified_diff(
            self.recorded.splitlines(), self.replayed.splitlines(), "recorded", "replayed", lineterm="", n=1
        )
        return "\n".join([head, *list(diff)[:context_lines]])


@dataclass
class Verification:
    episode_id: int
    game: str
    task: str
    seed: int
    recorded_steps: int
    replayed_steps: int
    divergence: Divergence | None

    @property
    def ok(self) -> bool:
        return self.divergence is None

    def describe(self) -> str:
        where = f"episode {self.episode_id} ({self.game}, {self.task}, seed {self.seed})"
        if self.divergence is None:
            return f"{where}: {self.replayed_steps} of {self.recorded_steps} steps replayed, 0 differences"
        return f"{where}: {self.divergence.describe()}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def resimulate(store: Store, episode_id: int, *, ttyrec_dir: str | None = None) -> Verification:
    """Play the episode's recorded actions from its seed in a fresh game, comparing each step;
    stops at the first difference. ``ttyrec_dir`` has NLE record the replay there (NetHack and
    MiniHack only)."""
    if not store.has_episode(episode_id):
        raise VerifyError(f"no episode {episode_id} in {store.path}")
    episode = store.episode(episode_id)
    steps = store.steps(episode_id)
    game = _fresh_game(episode["game"], episode["task"], ttyrec_dir)
    replayed = 0
    try:
        observation = game.reset(int(episode["seed"]))
        divergence = None
        for row in steps:
            divergence = _compare_step(game, row, observation)
            if divergence is not None:
                break
            observation = game.observation()
            replayed += 1
    finally:
        game.close()  # NLE writes the end of its ttyrec when the env closes
    return Verification(
        episode_id, episode["game"], episode["task"], int(episode["seed"]), len(steps), replayed, divergence
    )


def _fresh_game(name: str, task: str, ttyrec_dir: str | None) -> Game:
    cls = get_game_class(name)
    try:
        if ttyrec_dir is None:
            return cls(task=task)
        if "ttyrec_dir" not in _keywords(cls):
            raise VerifyError(f"{name} does not record ttyrecs (NetHack and MiniHack do)")
        return cls(task=task, ttyrec_dir=ttyrec_dir)  # type: ignore[call-arg]
    except GameError as exc:
        raise VerifyError(f"cannot start {name} {task}: {exc}") from exc


def _keywords(cls: type[Game]) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters)


def _compare_step(game: Game, row: dict[str, Any], observation: str) -> Divergence | None:
    """Check the observation the agent saw, play its action, check what followed."""
    step = int(row["step"])
    if row["observation"] != observation:
        return Divergence(step, "observation", row["observation"] or "", observation)
    if game.done:
        return Divergence(step, "done", "a step to play", "the game already over")
    try:
        result = game.step(row["action"])
    except GameError as exc:
        return Divergence(step, "action", repr(row["action"]), str(exc))
    checks = (
        ("reward", float(row["reward"] or 0.0), float(result.reward)),
        ("progression", float(row["progression"] or 0.0), float(game.progression())),
    )
    for what, recorded, replayed in checks:
        if not math.isclose(recorded, replayed, rel_tol=1e-9, abs_tol=1e-9):
            return Divergence(step, what, f"{recorded:g}", f"{replayed:g}")
    if bool(row["done"]) != result.done:
        return Divergence(step, "done", str(bool(row["done"])), str(result.done))
    recorded_achievements = json.loads(row["achievements"] or "[]")
    if sorted(recorded_achievements) != sorted(game.achievements()):
        return Divergence(step, "achievements", ", ".join(recorded_achievements), ", ".join(game.achievements()))
    return None
