"""Helpers that follow the player's position: where it is, where it has been, and loops."""

from __future__ import annotations

from collections import Counter, deque

from pydantic import Field

from automem.helpers.base import Helper, HelperContext, HelperParams, move_name

_PATH = r"^$|^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*){0,2}$"


def _where(position: tuple[int, int], depth: int | None) -> str:
    return f"x={position[0]} y={position[1]}" + (f" on level {depth}" if depth is not None else "")


class PositionParams(HelperParams):
    window: int = Field(default=20, ge=2, le=500, description="steps over which distinct cells are counted")
    path: str = Field(default="", pattern=_PATH, description="a file of visited cells; empty keeps none")
    max_lines: int = Field(default=30, ge=1, le=500, description="cells kept in the file, most recent first")


class PositionTracker(Helper):
    """The player's coordinates, how often this cell was visited, and how much ground recent steps covered."""

    name = "position_tracker"
    games = ("crafter", "minihack", "nethack")
    description = "a note with the player's x/y (and level), visits to this cell, distinct cells over `window` steps"
    writes = "`path` when set: one line per visited cell, `level L x,y: N visits, last step S`, newest first"
    Params = PositionParams
    params: PositionParams

    def __init__(self, params: PositionParams | None = None) -> None:
        super().__init__(params)
        p = self.params
        self._visits: Counter[tuple[int | None, int, int]] = Counter()
        self._last: dict[tuple[int | None, int, int], int] = {}
        self._recent: deque[tuple[int | None, int, int]] = deque(maxlen=p.window)

    def step(self, ctx: HelperContext) -> list[str]:
        p = self.params
        state = ctx.state
        if state.position is None:
            return []
        cell = (state.depth, *state.position)
        self._visits[cell] += 1
        self._last[cell] = ctx.step
        self._recent.append(cell)
        if p.path:
            newest = sorted(self._last, key=lambda c: -self._last[c])[: p.max_lines]
            lines = [
                (f"level {c[0]} " if c[0] is not None else "") + f"{c[1]},{c[2]}: {self._visits[c]} visits, "
                f"last step {self._last[c]}"
                for c in newest
            ]
            ctx.memory.write(self.name, p.path, "\n".join(lines))
        visits = self._visits[cell]
        return [
            f"You are at {_where(state.position, state.depth)}; visits to this cell: {visits}; "
            f"distinct cells in the last {len(self._recent)} steps: {len(set(self._recent))}."
        ]


class OscillationParams(HelperParams):
    window: int = Field(default=8, ge=3, le=100, description="steps looked back")
    max_cells: int = Field(default=2, ge=1, le=20, description="at most this many distinct cells is a loop")


class OscillationDetector(Helper):
    """Flags walking back and forth (or standing still) over a few cells without any reward."""

    name = "oscillation_detector"
    games = ("crafter", "minihack", "nethack")
    description = (
        "a warning when the last `window` steps stayed within `max_cells` cells without reward, "
        "with an open direction not tried lately"
    )
    Params = OscillationParams
    params: OscillationParams

    def __init__(self, params: OscillationParams | None = None) -> None:
        super().__init__(params)
        p = self.params
        self._cells: deque[tuple[int | None, int, int]] = deque(maxlen=p.window)
        self._actions: deque[str] = deque(maxlen=p.window)
        self._rewarded: deque[bool] = deque(maxlen=p.window)

    def step(self, ctx: HelperContext) -> list[str]:
        p = self.params
        state = ctx.state
        if state.position is None:
            return []
        self._cells.append((state.depth, *state.position))
        if ctx.last_action is not None:
            self._actions.append(ctx.last_action)
            self._rewarded.append(ctx.last_reward > 0)
        if len(self._cells) < p.window or any(self._rewarded):
            return []
        distinct = list(dict.fromkeys(self._cells))
        if len(distinct) > p.max_cells:
            return []
        cells = " and ".join(f"x={c[1]} y={c[2]}" for c in distinct)
        where = f"between {cells}" if len(distinct) > 1 else f"at {cells}"
        note = f"You have stayed {where} for {p.window} steps without reward (oscillating)."
        fresh = [
            name
            for name, (dx, dy) in state.moves.items()
            if name not in self._actions and state.can_walk(dx, dy) and move_name(state, dx, dy)
        ]
        if fresh:
            note += f" Try a direction you have not used lately: {', '.join(fresh[:3])}."
        else:
            note += " Change your plan: explore somewhere new."
        self._cells.clear()  # one warning per loop, not one per step while it lasts
        return [note]
