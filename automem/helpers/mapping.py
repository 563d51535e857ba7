"""Helpers that read the map: which moves are open, and the way to the nearest things."""

from __future__ import annotations

from collections import deque

import numpy as np
from pydantic import Field

from automem.games.base import GameState, Thing
from automem.helpers.base import Helper, HelperContext, HelperParams, direction_word, move_name

_FOUR = ((0, -1), (0, 1), (1, 0), (-1, 0))
_EIGHT = (*_FOUR, (1, -1), (-1, -1), (1, 1), (-1, 1))
#: what each game's player usually looks for, nearest first once found
DEFAULT_TARGETS = {
    "crafter": "water,tree,cow,stone,coal,iron,diamond,table,furnace",
    "minihack": "stairs down,unexplored,closed door,monster",
    "nethack": "stairs down,unexplored,closed door",
}
_WALLS = {"|": "wall", "-": "wall", " ": "rock or unexplored", "#": "tree or sink", "}": "water or lava"}


def _thing_at(state: GameState, dx: int, dy: int) -> Thing | None:
    return next((t for t in state.things if t.dx == dx and t.dy == dy), None)


def _diagonal_blocked(state: GameState, dx: int, dy: int) -> bool:
    # NetHack: nobody moves diagonally into or out of a doorway with a door in it (open or broken)
    if not (dx and dy) or state.game not in ("nethack", "minihack"):
        return False
    target = _thing_at(state, dx, dy)
    return target is not None and target.kind == "open door"


def open_moves(state: GameState) -> tuple[list[str], list[str]]:
    """(move names that lead somewhere, ``name (what blocks)`` for the others)."""
    open_, blocked = [], []
    for name, (dx, dy) in state.moves.items():
        thing = _thing_at(state, dx, dy)
        if thing is not None and thing.kind.startswith("monster "):
            blocked.append(f"{name} ({thing.kind.removeprefix('monster ')}: moving attacks it)")
        elif thing is not None and thing.kind.startswith("pet "):
            open_.append(f"{name} (swaps with your {thing.kind.removeprefix('pet ')})")
        elif state.can_walk(dx, dy) and not _diagonal_blocked(state, dx, dy):
            open_.append(name)
        else:
            what = thing.kind if thing is not None else _WALLS.get(state.cell(dx, dy), repr(state.cell(dx, dy)))
            blocked.append(f"{name} ({what})")
    return open_, blocked


class PassableParams(HelperParams):
    show_blocked: bool = Field(default=True, description="also name what blocks each closed direction")


class PassableDirections(Helper):
    """The moves that lead somewhere from here, from the game's map (NetHack, MiniHack) or local view (Crafter)."""

    name = "passable_directions"
    games = ("crafter", "minihack", "nethack")
    description = "a note listing the open moves from the player's cell and what blocks the others"
    Params = PassableParams
    params: PassableParams

    def step(self, ctx: HelperContext) -> list[str]:
        p = self.params
        state = ctx.state
        if not state.moves or not state.local_map:
            return []
        open_, blocked = open_moves(state)
        note = f"Open moves: {', '.join(open_) or 'none'}."
        if p.show_blocked and blocked:
            note += f" Blocked: {', '.join(blocked)}."
        return [note]


def reach(state: GameState) -> dict[tuple[int, int], tuple[int, tuple[int, int]]]:
    """(col, row) -> (moves, first move offset) for every cell the player can walk to (BFS)."""
    start = state.origin
    out: dict[tuple[int, int], tuple[int, tuple[int, int]]] = {start: (0, (0, 0))}
    queue = deque([start])
    rows, cols = state.walkable.shape
    steps = _EIGHT if state.diagonal else _FOUR
    while queue:
        col, row = queue.popleft()
        dist, first = out[(col, row)]
        for dx, dy in steps:
            nxt = (col + dx, row + dy)
            if nxt in out or not (0 <= nxt[0] < cols and 0 <= nxt[1] < rows) or not state.walkable[nxt[1], nxt[0]]:
                continue
            out[nxt] = (dist + 1, first if dist else (dx, dy))
            queue.append(nxt)
    return out


def _frontier(state: GameState, near: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """Walkable cells next to a blank one that the player has not stood next to: where the map goes on.

    NetHack draws solid rock and unseen ground alike as blanks, so a corridor the player walked is
    bordered by blanks too; cells the player stood on or next to (``near``) are not unexplored.
    """
    rows, cols = np.nonzero(state.walkable)
    cells = []
    for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
        if (col, row) in near:
            continue
        if any(state.cell(col + dx - state.origin[0], row + dy - state.origin[1]) == " " for dx, dy in _FOUR):
            cells.append((col, row))
    return cells


class TargetParams(HelperParams):
    targets: str = Field(default="", description="comma-separated kinds (e.g. tree,water); empty: the game's usual")
    max_targets: int = Field(default=4, ge=1, le=12, description="kinds listed, nearest first")
    remember: bool = Field(default=True, description="also name kinds seen earlier, now out of view or underfoot")


class NearestTargets(Helper):
    """Direction, distance and first move to the nearest resource, stairs or unexplored area."""

    name = "nearest_targets"
    games = ("crafter", "minihack", "nethack")
    description = (
        "a note with the nearest thing of each target kind: its offset, the moves to reach it and the first move "
        "(also kinds seen earlier, now out of view or underfoot; NetHack/MiniHack: the nearest unexplored ground)"
    )
    Params = TargetParams
    params: TargetParams

    def __init__(self, params: TargetParams | None = None) -> None:
        super().__init__(params)
        self._seen: dict[tuple[int | None, str], tuple[int, int]] = {}  # (level, kind) -> where last seen
        self._near: set[tuple[int | None, int, int]] = set()  # (level, x, y) the player stood on or next to

    def _kinds(self, game: str) -> list[str]:
        p = self.params
        text = p.targets or DEFAULT_TARGETS.get(game, "")
        return [k.strip() for k in text.split(",") if k.strip()]

    def step(self, ctx: HelperContext) -> list[str]:
        p = self.params
        state = ctx.state
        if not state.local_map:
            return []
        paths = reach(state)
        if state.position is not None:
            x, y = state.position
            self._near.update((state.depth, x + dx, y + dy) for dx, dy in (*_EIGHT, (0, 0)))
        found: list[tuple[int, str]] = []
        for kind in self._kinds(state.game):
            if kind == "unexplored":
                near = self._near_cells(state)
                spots = [(c[0] - state.origin[0], c[1] - state.origin[1]) for c in _frontier(state, near)]
            else:
                spots = [(t.dx, t.dy) for t in state.things if t.kind == kind or t.kind.startswith(kind + " ")]
            best = self._best(state, paths, spots)
            key = (state.depth, kind)
            if best is not None:
                found.append((best[0], f"{kind}: {direction_word(*best[1])} ({best[2]})"))
                if state.position is not None and kind != "unexplored":
                    self._seen[key] = (state.position[0] + best[1][0], state.position[1] + best[1][1])
            elif p.remember and key in self._seen and state.position is not None:
                x, y = self._seen[key]
                dx, dy = x - state.position[0], y - state.position[1]
                if not (dx or dy):  # NetHack draws the player over the stairs it stands on
                    found.append((0, f"{kind}: here, under you"))
                else:
                    text = f"{kind}: {direction_word(dx, dy)} (seen earlier, out of view)"
                    found.append((abs(dx) + abs(dy) + 1000, text))
        if not found:
            return []
        found.sort(key=lambda f: f[0])
        return ["Nearest: " + "; ".join(text for _, text in found[: p.max_targets]) + "."]

    def _near_cells(self, state: GameState) -> set[tuple[int, int]]:
        """The cells of this level the player stood on or next to, as (col, row) of ``local_map``."""
        if state.position is None:
            return {state.origin}
        ox, oy = state.origin[0] - state.position[0], state.origin[1] - state.position[1]
        return {(x + ox, y + oy) for level, x, y in self._near if level == state.depth}

    @staticmethod
    def _best(
        state: GameState, paths: dict[tuple[int, int], tuple[int, tuple[int, int]]], spots: list[tuple[int, int]]
    ) -> tuple[int, tuple[int, int], str] | None:
        """(moves, offset, how) to the nearest spot: standing on it, or next to it when it blocks."""
        best: tuple[int, tuple[int, int], str] | None = None
        ox, oy = state.origin
        for dx, dy in spots:
            cell = (ox + dx, oy + dy)
            options = [cell] if cell in paths else [(cell[0] + a, cell[1] + b) for a, b in _FOUR]
            for option in options:
                if option not in paths:
                    continue
                moves, first = paths[option]
                if best is None or moves < best[0]:
                    step = move_name(state, *first) if moves else None
                    plural = "move" if moves == 1 else "moves"
                    how = f"{moves} {plural}, first {step}" if step else ("here" if cell == option else "adjacent")
                    best = (moves, (dx, dy), how)
        if best is None and spots:  # seen but no known way there: the straight-line offset
            dx, dy = min(spots, key=lambda s: abs(s[0]) + abs(s[1]))
            best = (10_000 + abs(dx) + abs(dy), (dx, dy), "no known path")
        return best
