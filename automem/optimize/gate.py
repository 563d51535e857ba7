"""Loop 1's acceptance gate: when a candidate structure counts as better than its parent.

A sampling model's progression moves from run to run on the same seeds, so a higher mean is not
yet a gain. Candidate and parent are compared **per seed** (paired: the same task, seed and step
budget), and a candidate is accepted only when the mean paired gain is positive, at least
``min_gain`` and more than ``se_multiple`` standard errors of that gain. Ties are never accepted;
a tie that costs fewer tokens per step is marked ``tied`` (it stays on the Pareto front, it does
not become the lineage's best). With the default ``se_multiple`` of 1, one seed that gained while
all others stayed equal is never enough: its mean gain is exactly one standard error.

**Racing** spends fewer episodes on candidates that cannot win: the candidate first plays a part
of the seeds; if, even gaining on each remaining seed as much as on its best seed so far or
``race_hope`` (whichever is more), its mean paired gain could not reach ``min_gain`` (or stay
positive), it stops there. ``race_hope`` exists because a heat that tied everywhere says little
about the seeds it did not play: bounding them by the heat's best gain (0) stopped every tie.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from automem.runs.metrics import mean_se

#: statuses a judged candidate can end with
ACCEPTED, REJECTED, TIED, RACED_OUT = "accepted", "rejected", "tied", "raced_out"


@dataclass(frozen=True)
class Gate:
    #: the smallest mean paired gain in progression (the game's own unit) that can be accepted
    min_gain: float = 1.0
    #: the mean paired gain must exceed this many standard errors of itself
    se_multiple: float = 1.0
    #: the share of the seeds a candidate plays before racing may stop it (0 or 1: no racing)
    race_fraction: float = 0.5
    #: the gain per unplayed seed racing still deems possible, whatever the heat showed (progression
    #: units; the default is one Crafter achievement, 1/22 of 100)
    race_hope: float = 4.55

    def __post_init__(self) -> None:
        if self.min_gain < 0 or self.se_multiple < 0 or self.race_hope < 0:
            raise ValueError("the gate's minimum gain, standard-error multiple and race hope must not be negative")
        if not 0.0 <= self.race_fraction <= 1.0:
            raise ValueError("the race fraction must lie between 0 and 1")

    def settings(self) -> dict[str, float]:
        return asdict(self)

    def race_seeds(self, seeds: list[int]) -> list[int] | None:
        """The seeds of the first heat, or None when racing would not save anything."""
        if self.race_fraction in (0.0, 1.0):
            return None
        count = max(2, math.ceil(len(seeds) * self.race_fraction))
        return seeds[:count] if count < len(seeds) else None

    def decide(
        self, candidate: dict[str, float], parent: dict[str, float], *, candidate_tokens: float, parent_tokens: float
    ) -> Decision:
        """The verdict on a candidate that played every seed (``task/seed`` -> progression)."""
        pairs = paired(candidate, parent)
        figures = Paired.of(pairs)
        if not pairs:
            return Decision(REJECTED, "no seed finished by both the candidate and its parent", figures, self)
        head = figures.describe()
        if all(d == 0 for d in pairs.values()):
            if candidate_tokens < parent_tokens:
                return Decision(
                    TIED,
                    f"{head}: a tie on every seed; cheaper ({candidate_tokens:.0f} < {parent_tokens:.0f} tokens "
                    "per step), kept on the front, not accepted",
                    figures,
                    self,
                )
            return Decision(REJECTED, f"{head}: a tie on every seed, not cheaper", figures, self)
        failed = []
        if figures.gain <= 0:
            failed.append("not positive")
        if figures.gain < self.min_gain:
            failed.append(f"below the minimum gain {self.min_gain:g}")
        if figures.gain <= self.se_multiple * figures.se:
            failed.append(f"within {self.se_multiple:g} standard error(s)")
        if failed:
            return Decision(REJECTED, f"{head}: {', '.join(failed)}", figures, self)
        return Decision(
            ACCEPTED,
            f"{head}: clears the minimum gain {self.min_gain:g} and {self.se_multiple:g} standard error(s)",
            figures,
            self,
        )

    def hopeless(self, heat: dict[str, float], parent: dict[str, float], remaining: int) -> Decision | None:
        """After the first heat: a RACED_OUT decision when the candidate cannot catch up, else None.

        "Cannot catch up": even if each of the ``remaining`` pairs gained as much as its best pair
        so far or ``race_hope`` (the larger), the mean paired gain over all would stay below
        ``min_gain`` (or not be positive)."""
        pairs = paired(heat, parent)
        figures = Paired.of(pairs)
        if not pairs:
            return None  # nothing to judge on yet: let it play everything
        best = max(max(pairs.values()), self.race_hope)
        optimistic = (sum(pairs.values()) + remaining * best) / (len(pairs) + remaining)
        if optimistic > 0 and optimistic >= self.min_gain:
            return None
        return Decision(
            RACED_OUT,
            f"{figures.describe()} on the first {len(pairs)} pair(s): at most {optimistic:+.2f} over all "
            f"even gaining {best:+.2f} on each of the {remaining} left, below the minimum gain "
            f"{self.min_gain:g} or not positive; stopped",
            figures,
            self,
            skipped=remaining,
        )


def paired(candidate: dict[str, float], parent: dict[str, float]) -> dict[str, float]:
    """Per-seed gains (candidate minus parent) on the task/seed pairs both finished."""
    return {k: candidate[k] - parent[k] for k in sorted(set(candidate) & set(parent))}


@dataclass(frozen=True)
class Paired:
    n: int
    gain: float
    se: float
    better: int
    worse: int
    same: int

    @classmethod
    def of(cls, pairs: dict[str, float]) -> Paired:
        gain, se = mean_se(list(pairs.values()))
        values = pairs.values()
        return cls(
            len(pairs), gain, se, sum(d > 0 for d in values), sum(d < 0 for d in values), sum(d == 0 for d in values)
        )

    def describe(self) -> str:
        return (
            f"paired gain {self.gain:+.2f} ± {self.se:.2f} over {self.n} seed(s) "
            f"({self.better} better, {self.worse} worse, {self.same} same)"
        )


@dataclass(frozen=True)
class Decision:
    status: str
    reason: str
    figures: Paired
    gate: Gate
    #: episodes racing did not play
    skipped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED

    def record(self) -> dict[str, Any]:
        """What is stored with the decision (``optimize_iterations.gate``)."""
        return {"settings": self.gate.settings(), **asdict(self.figures), "skipped": self.skipped, **self.extra}
