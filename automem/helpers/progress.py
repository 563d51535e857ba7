"""Crafter's 22 achievements: which are done, and what the inventory lets the player unlock next."""

from __future__ import annotations

from functools import cache

from pydantic import Field

from automem.helpers.base import Helper, HelperContext, HelperParams

_PATH = r"^$|^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*){0,2}$"
#: achievements whose condition is no recipe in crafter's tables
_OTHER = {
    "collect_drink": ({}, "face water and do"),
    "collect_sapling": ({}, "do on grass (sometimes gives a sapling)"),
    "eat_cow": ({}, "hit a cow with do until it is eaten"),
    "eat_plant": ({"sapling": 1}, "place a sapling, wait until it is ripe, then do on it"),
    "defeat_zombie": ({}, "hit a zombie with do (they come on grass, more at night)"),
    "defeat_skeleton": ({}, "hit a skeleton with do (they live in dark caves)"),
    "wake_up": ({}, "sleep when energy is low; you wake up when it is full"),
}


@cache
def recipes() -> dict[str, tuple[dict[str, int], str]]:
    """achievement -> (items needed, how), from crafter's own tables so they cannot drift."""
    from crafter import constants  # imported here: only Crafter episodes pay for it

    out: dict[str, tuple[dict[str, int], str]] = {}
    for material, info in constants.collect.items():
        name = f"collect_{next(iter(info['receive']))}"
        if material in ("water", "grass"):
            continue
        out[name] = (dict(info["require"]), f"face {material} and do")
    for name, info in constants.place.items():
        out[f"place_{name}"] = (dict(info["uses"]), f"place_{name} facing {'/'.join(info['where'][:3])}")
    for name, info in constants.make.items():
        out[f"make_{name}"] = (dict(info["uses"]), f"make_{name} next to a {' and a '.join(info['nearby'])}")
    out.update(_OTHER)
    assert set(out) == set(constants.achievements), "crafter's achievements changed"
    return out


#: the usual order of the tech tree: among achievements equally ready, the earlier is suggested first
ORDER = (
    "collect_wood", "place_table", "make_wood_pickaxe", "make_wood_sword", "collect_drink", "eat_cow",
    "collect_sapling", "place_plant", "collect_stone", "place_stone", "make_stone_pickaxe", "make_stone_sword",
    "collect_coal", "place_furnace", "collect_iron", "make_iron_pickaxe", "make_iron_sword", "collect_diamond",
    "wake_up", "eat_plant", "defeat_zombie", "defeat_skeleton",
)  # fmt: skip


@cache
def _nearby() -> dict[str, tuple[str, ...]]:
    from crafter import constants

    return {f"make_{name}": tuple(info["nearby"]) for name, info in constants.make.items()}


def next_steps(
    unlocked: tuple[str, ...], inventory: dict[str, int], near: frozenset[str] = frozenset()
) -> list[tuple[int, int, str, str]]:
    """(things missing, tech-tree rank, achievement, text) for every achievement not yet unlocked,
    the readiest first; ``near`` are the kinds within reach (a table for make_*)."""
    out = []
    for name, (needs, how) in recipes().items():
        if name in unlocked:
            continue
        missing = [f"{n - inventory.get(k, 0)} {k}" for k, n in needs.items() if inventory.get(k, 0) < n]
        missing += [f"a {k} nearby" for k in _nearby().get(name, ()) if k not in near]
        text = f"{name}: {how}"
        if missing:
            text += " (missing " + ", ".join(missing) + ")"
        rank = ORDER.index(name) if name in ORDER else len(ORDER)
        out.append((len(missing), rank, name, text))
    return sorted(out)


class ChecklistParams(HelperParams):
    max_next: int = Field(default=3, ge=1, le=22, description="achievements suggested per step")
    path: str = Field(default="", pattern=_PATH, description="a checklist file kept up to date; empty keeps none")


class AchievementChecklist(Helper):
    """Crafter's 22 achievements: how many are done and the next ones the inventory allows."""

    name = "achievement_checklist"
    games = ("crafter",)
    description = (
        "a note with achievements done (n/22) and the `max_next` readiest to unlock next, with what is missing"
    )
    writes = "`path` when set: the 22 achievements as `[x] name` / `[ ] name: how (missing ...)` lines"
    Params = ChecklistParams
    params: ChecklistParams

    def step(self, ctx: HelperContext) -> list[str]:
        p = self.params
        state = ctx.state
        # crafter's "nearby" is the area around the player; the 3x3 cells next to it are within reach
        near = frozenset(t.kind for t in state.things if max(abs(t.dx), abs(t.dy)) <= 1)
        todo = next_steps(state.achievements, state.inventory, near)
        if p.path:
            done = [f"[x] {a}" for a in state.achievements]
            ctx.memory.write(self.name, p.path, "\n".join([*done, *(f"[ ] {text}" for *_, text in todo)]))
        total = len(recipes())
        head = f"Achievements {len(state.achievements)}/{total}"
        if not todo:
            return [f"{head}: all done."]
        return [f"{head}. Next: " + "; ".join(text for *_, text in todo[: p.max_next]) + "."]
