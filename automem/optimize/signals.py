"""The digest's numbers in the shape the heuristic critic's mutation catalogue reads."""

from __future__ import annotations

import re
from typing import Any

from automem.optimize.heuristic import Signals

#: a death cause (the digest's last vitals) that says hunger or thirst: Crafter's food/drink near 0, NetHack's Weak
_STARVED = re.compile(r"\b(?:food|drink): [0-2]/|\b(?:Weak|Fainting|Fainted|starv)", re.I)


def signals_from_digest(digest: Any) -> Signals:
    steps = sum(e.steps for e in digest.episodes)
    memory = digest.memory
    return Signals(
        oscillation_rate=memory.oscillating / memory.unrewarded_steps if memory.unrewarded_steps else 0.0,
        starvation_deaths=sum(1 for e in digest.episodes if e.died and _STARVED.search(e.death_cause or "")),
        lookups=memory.lookups,
        empty_lookup_rate=memory.empty_lookup_rate,
        steps=steps,
        invalid_rate=sum(e.invalid_outputs for e in digest.episodes) / steps if steps else 0.0,
        unchanged_rate=sum(e.unchanged_observations for e in digest.episodes) / steps if steps else 0.0,
        longest_zero_reward_streak=max((e.longest_zero_reward_streak for e in digest.episodes), default=0),
        log_budget_exhausted_rate=sum(e.log_budget_exhausted for e in digest.episodes) / steps if steps else 0.0,
        files=dict(digest.files),  # the digest's FileStats as they are: one class for both
    )
