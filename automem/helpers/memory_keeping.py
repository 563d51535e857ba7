"""Helpers that keep memory files in code: a log of actions and outcomes, and pruning."""

from __future__ import annotations

from pydantic import Field, model_validator

from automem.games.base import GameState
from automem.helpers.base import Helper, HelperContext, HelperParams, direction_word
from automem.memory.ops import split_lines

_PATH = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*){0,2}$"


def _changes(before: dict[str, int], after: dict[str, int], *, limit: int = 4) -> list[str]:
    out = []
    for key in dict.fromkeys([*before, *after]):
        old, new = before.get(key, 0), after.get(key, 0)
        if old != new:
            out.append(f"{key} {old}->{new}")
    return out[:limit]


def outcome(before: GameState | None, after: GameState, reward: float, same_text: bool) -> str:
    """What one action led to, from the typed states before and after it."""
    parts: list[str] = []
    if before is not None and before.position is not None and after.position is not None:
        if before.depth is not None and after.depth != before.depth:
            parts.append(f"level {before.depth}->{after.depth}")
        dx, dy = after.position[0] - before.position[0], after.position[1] - before.position[1]
        parts.append(f"moved {direction_word(dx, dy)}" if dx or dy else "did not move")
    elif same_text:
        parts.append("nothing changed")
    if before is not None:
        parts += _changes(before.vitals, after.vitals)
        gained = _changes(before.inventory, after.inventory, limit=3)
        parts += [g for g in gained if len(g) <= 40]
        parts += [f"unlocked {a}" for a in after.achievements if a not in before.achievements]
    if reward:
        parts.append(f"reward {reward:+g}")
    if after.message:
        parts.append(repr(after.message.splitlines()[0][:60]))
    return "; ".join(parts) or "no visible change"


class AutoLogParams(HelperParams):
    path: str = Field(default="log.md", pattern=_PATH, description="the log file")
    max_lines: int = Field(default=30, ge=2, le=500, description="oldest lines are dropped past this")


class AutoLog(Helper):
    """Appends each action and what it led to (moved, vitals, items, unlocks, reward, message)."""

    name = "auto_log"
    description = "nothing in the prompt itself; keeps a capped log of each action and its outcome the model can read"
    writes = (
        "`path` (default log.md): one line per step, `step N: action -> outcome`, the oldest dropped past max_lines"
    )
    Params = AutoLogParams
    params: AutoLogParams

    def __init__(self, params: AutoLogParams | None = None) -> None:
        super().__init__(params)
        self._before: GameState | None = None
        self._text: str | None = None

    def step(self, ctx: HelperContext) -> list[str]:
        p = self.params
        state = ctx.state
        if ctx.last_action is not None and ctx.step > 0:
            line = f"step {ctx.step - 1}: {ctx.last_action} -> " + outcome(
                self._before, state, ctx.last_reward, ctx.observation == self._text
            )
            current = ctx.memory.read(p.path) or ""
            lines = [*split_lines(current), line] if current else [line]
            ctx.memory.write(self.name, p.path, "\n".join(lines[-p.max_lines :]))
        self._before, self._text = state, ctx.observation
        return []


class AutoPruneParams(HelperParams):
    path: str = Field(default="*", pattern=rf"^\*$|{_PATH}", description="one file, or * for every writable file")
    max_lines: int = Field(default=40, ge=2, le=2000, description="a file longer than this is cut back")
    keep: int = Field(default=20, ge=1, le=2000, description="the newest lines kept after a cut")

    @model_validator(mode="after")
    def _keep_below(self) -> AutoPruneParams:
        if self.keep >= self.max_lines:
            raise ValueError(f"keep ({self.keep}) must be below max_lines ({self.max_lines})")
        return self


class AutoPrune(Helper):
    """Cuts a file back to its newest lines once it passes a size, so notes cannot crowd the prompt."""

    name = "auto_prune"
    description = "a note naming each file it cut back this step"
    writes = "`path` (or every writable file for *): cut to its newest `keep` lines once past `max_lines`"
    Params = AutoPruneParams
    params: AutoPruneParams

    def step(self, ctx: HelperContext) -> list[str]:
        p = self.params
        paths = ctx.memory.paths() if p.path == "*" else [p.path]
        notes = []
        for path in paths:
            if ctx.memory.read_only(path):
                continue  # seeded rules and tables are the structure's, not the agent's notes
            lines = split_lines(ctx.memory.read(path) or "")
            if len(lines) > p.max_lines:
                result = ctx.memory.write(self.name, path, "\n".join(lines[-p.keep :]))
                if result is not None and result.ok:
                    notes.append(f"{path} had {len(lines)} lines; its oldest were cut, {p.keep} kept.")
        return notes


#: fixed things worth a place on the map (creatures and items move, so they are left out)
MAP_KINDS = {
    "crafter": "water,tree,stone,coal,iron,diamond,table,furnace,lava",
    "minihack": "stairs down,stairs up,closed door,open door,fountain,altar,trap,lava,water",
    "nethack": "stairs down,stairs up,ladder down,ladder up,closed door,open door,fountain,altar,sink,throne,trap",
}


class MapKeeperParams(HelperParams):
    path: str = Field(default="map.md", pattern=_PATH, description="the map file")
    max_lines: int = Field(default=30, ge=2, le=500, description="places kept, nearest first")
    kinds: str = Field(default="", description="comma-separated kinds to keep; empty: the game's fixed features")


class MapKeeper(Helper):
    """A coordinate-keyed map of fixed things seen (resources, stairs, doors), nearest first."""

    name = "map_keeper"
    games = ("crafter", "minihack", "nethack")
    description = "nothing in the prompt itself; keeps a map of where fixed things were seen, keyed by coordinates"
    writes = (
        "`path` (default map.md): `you: x,y` then one `x,y: kind` line per place (`L2 x,y: kind` on NetHack levels), "
        "nearest first, places seen gone (a felled tree) removed"
    )
    Params = MapKeeperParams
    params: MapKeeperParams

    def __init__(self, params: MapKeeperParams | None = None) -> None:
        super().__init__(params)
        self._places: dict[tuple[int | None, int, int], str] = {}

    def step(self, ctx: HelperContext) -> list[str]:
        p = self.params
        state = ctx.state
        if state.position is None or not state.local_map:
            return []
        kinds = {k.strip() for k in (p.kinds or MAP_KINDS.get(state.game, "")).split(",") if k.strip()}
        x, y = state.position
        # every cell of the map in view is seen now: forget what was there, then note what is
        rows, cols = len(state.local_map), len(state.local_map[0])
        ox, oy = x - state.origin[0], y - state.origin[1]
        if state.game == "crafter":  # the view moves with the player; NetHack's map is the whole level
            for key in [k for k in self._places if k[0] == state.depth]:
                if 0 <= key[1] - ox < cols and 0 <= key[2] - oy < rows:
                    del self._places[key]
        else:
            self._places = {k: v for k, v in self._places.items() if k[0] != state.depth}
        for t in state.things:
            if t.kind in kinds:
                self._places[(state.depth, x + t.dx, y + t.dy)] = t.kind
        here = [k for k in self._places if k[0] == state.depth]

        def moves(k: tuple[int | None, int, int]) -> int:
            dx, dy = abs(k[1] - x), abs(k[2] - y)
            return max(dx, dy) if state.diagonal else dx + dy

        here.sort(key=lambda k: (moves(k), k[2], k[1]))
        level = f"L{state.depth} " if state.depth is not None else ""
        lines = [f"you: {level}{x},{y}"] + [f"{level}{k[1]},{k[2]}: {self._places[k]}" for k in here]
        ctx.memory.write(self.name, p.path, "\n".join(lines[: p.max_lines]))
        return []
