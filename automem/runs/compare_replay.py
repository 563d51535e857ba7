"""Two or three stored episodes of one game, task and seed, stepped together by step number.

Episodes of the same seed start from the same state, so step N of each is directly comparable:
the first step where their actions or memory writes part is where their structures (or models)
made different decisions. An episode shorter than the others stays on its last step, marked as
ended, while the others go on.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import dataclass

from automem.runs.replay import EpisodeReplay, ReplayError
from automem.store.db import Store

MIN_EPISODES, MAX_EPISODES = 2, 3


class CompareError(ReplayError):
    """The episodes cannot be compared: too few or too many, repeated, empty, or not one game, task and seed."""


@dataclass(frozen=True)
class PaneStep:
    """What one episode shows at a lockstep step."""

    replay: EpisodeReplay
    #: the step shown: the one asked for, or the episode's last when it ended before
    index: int
    #: the episode ended before the step asked for
    ended: bool


@dataclass(frozen=True)
class Standing:
    """Who is ahead at a step: progression first, achievements to break a tie."""

    #: positions (0-based, in the order given) of the episodes ahead; empty when all are level
    leaders: tuple[int, ...]
    text: str


def check_count(episode_ids: Sequence[int]) -> None:
    """Refuse too few, too many or repeated ids before anything is loaded."""
    if not MIN_EPISODES <= len(episode_ids) <= MAX_EPISODES:
        raise CompareError(f"compare needs {MIN_EPISODES} or {MAX_EPISODES} episodes, got {len(episode_ids)}")
    repeated = sorted({e for e in episode_ids if list(episode_ids).count(e) > 1})
    if repeated:
        raise CompareError(f"episode {repeated[0]} is given twice: compare needs different episodes")


def open_lockstep(store: Store, episode_ids: Sequence[int]) -> LockstepReplay:
    """The lockstep replay of these episodes; CompareError (a ReplayError) says why not."""
    check_count(episode_ids)
    return LockstepReplay([EpisodeReplay(store, e) for e in episode_ids])


def _key(replay: EpisodeReplay) -> tuple[str, str, int]:
    e = replay.episode
    return e["game"], e["task"], int(e["seed"])


def _describe(replay: EpisodeReplay) -> str:
    game, task, seed = _key(replay)
    return f"{replay.episode_id} is {game}/{task} seed {seed}"


class LockstepReplay:
    def __init__(self, replays: Sequence[EpisodeReplay]) -> None:
        check_count([r.episode_id for r in replays])
        for r in replays:
            if not len(r):
                raise CompareError(f"episode {r.episode_id} has no recorded steps")
        first = replays[0]
        for other in replays[1:]:
            if _key(other) != _key(first):
                raise CompareError(
                    "compare needs episodes of the same game, task and seed: "
                    f"episode {_describe(first)}, episode {_describe(other)}"
                )
        self.replays = list(replays)
        # one pass over every step up front: the next difference is then a bisect, as next_write is
        self._differences = [s for s in range(len(self)) if self._differs(s)]

    def __len__(self) -> int:
        return max(len(r) for r in self.replays)

    @property
    def last(self) -> int:
        return len(self) - 1

    # -- one lockstep step ----------------------------------------------------------------------
    def at(self, step: int) -> list[PaneStep]:
        return [PaneStep(r, min(step, len(r) - 1), step >= len(r)) for r in self.replays]

    def _differs(self, step: int) -> bool:
        # only the episodes still playing at this step are compared: having ended is not a decision
        playing = [r for r in self.replays if step < len(r)]
        signatures = {(r.action(step), _writes_signature(r, step)) for r in playing}
        return len(signatures) > 1

    def differs(self, step: int) -> bool:
        at = bisect.bisect_left(self._differences, step)
        return at < len(self._differences) and self._differences[at] == step

    def next_difference(self, step: int) -> int | None:
        """The next step after ``step`` where the episodes still playing differ in action or memory write."""
        at = bisect.bisect_right(self._differences, step)
        return self._differences[at] if at < len(self._differences) else None

    def previous_difference(self, step: int) -> int | None:
        at = bisect.bisect_left(self._differences, step) - 1
        return self._differences[at] if at >= 0 else None

    def standing(self, step: int) -> Standing:
        """Who is ahead after ``step`` (an ended episode counts with what it reached)."""
        scores = [p.replay.standing(p.index) for p in self.at(step)]
        best = max(scores)
        leaders = tuple(i for i, s in enumerate(scores) if s == best)
        if len(leaders) == len(scores):
            return Standing((), f"level: {_score(best)}")
        names = " and ".join(f"#{self.replays[i].episode_id}" for i in leaders)
        rest = " · ".join(f"#{r.episode_id} {_score(s)}" for r, s in zip(self.replays, scores, strict=True))
        return Standing(leaders, f"{names} ahead · {rest}")


def _writes_signature(replay: EpisodeReplay, step: int) -> tuple[tuple[str, str, str], ...]:
    return tuple((op.verb, op.path, json.dumps(op.args, sort_keys=True)) for op in replay.writes(step))


def _score(score: tuple[float, int]) -> str:
    progression, achievements = score
    return f"{progression:.1f}% {achievements}★"
