"""Vital signs and threats: a warning before hunger, thirst or a monster ends the episode."""

from __future__ import annotations

from pydantic import Field

from automem.games.base import GameState
from automem.helpers.base import Helper, HelperContext, HelperParams, direction_word

_CRAFTER_ADVICE = {
    "food": "eat: hit a cow (do) or eat a ripe plant",
    "drink": "drink: face water and do",
    "energy": "sleep soon (walled in by stone is safest)",
    "health": "avoid zombies, skeletons and lava; keep food, drink and energy up to heal",
}
_CRAFTER_THREATS = ("zombie", "skeleton", "arrow")
_NLE_HUNGER_ADVICE = {
    "Hungry": "eat something (eat, then the item's letter)",
    "Weak": "eat now, or pray if you have not prayed for ~1000 turns",
    "Fainting": "eat or pray at once",
    "Fainted": "eat or pray at once",
}


class VitalsParams(HelperParams):
    low: int = Field(default=3, ge=1, le=8, description="Crafter: warn when a vital is at or below this (of 9)")
    hp_fraction: float = Field(default=0.5, ge=0.05, le=0.95, description="NetHack/MiniHack: warn below this HP share")
    threat_distance: int = Field(default=2, ge=1, le=8, description="warn about hostile creatures this close")


def _threats(state: GameState, distance: int) -> list[str]:
    out = []
    for t in state.things:
        hostile = t.kind in _CRAFTER_THREATS if state.game == "crafter" else t.kind.startswith("monster ")
        if hostile and t.distance(state.diagonal) <= distance:
            out.append(f"{t.kind.removeprefix('monster ')} {direction_word(t.dx, t.dy)}")
    return out


class VitalsWarning(Helper):
    """Warns when a vital sign runs low (with what restores it) and when a hostile creature is close."""

    name = "vitals_warning"
    games = ("crafter", "minihack", "nethack")
    description = (
        "a warning when food, drink, energy, health or HP run low (with what restores each), or a threat is near"
    )
    Params = VitalsParams
    params: VitalsParams

    def step(self, ctx: HelperContext) -> list[str]:
        p = self.params
        state = ctx.state
        notes = []
        if state.game == "crafter":
            low = [(v, n) for v, n in state.vitals.items() if n <= p.low]
            for vital, value in sorted(low, key=lambda vn: vn[1]):
                notes.append(f"Low {vital} {value}/{state.vitals_max.get(vital, 9)}: {_CRAFTER_ADVICE.get(vital, '')}.")
        else:
            hp, hp_max = state.vitals.get("hp"), state.vitals_max.get("hp")
            if hp is not None and hp_max and hp < p.hp_fraction * hp_max:
                advice = (
                    "pray (HP under 1/7 is trouble a god fixes)"
                    if hp * 7 < hp_max
                    else "retreat and rest, or quaff a healing potion"
                )
                notes.append(f"Low HP {hp}/{hp_max}: {advice}.")
            for word in state.conditions:
                if word in _NLE_HUNGER_ADVICE:
                    notes.append(f"You are {word}: {_NLE_HUNGER_ADVICE[word]}.")
        threats = _threats(state, p.threat_distance)
        if threats:
            notes.append(f"Threat near: {', '.join(threats[:3])}.")
        return notes
