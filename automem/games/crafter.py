"""Crafter with a text observation in the spirit of BALROG's language wrapper.

The agent only gets what the player sees: the 9x7 local view around it (Crafter's image shows
9x9 cells, the bottom two rows are the inventory). ``info["semantic"]`` is the whole 64x64 world,
so it is cropped to that view before anything is described or drawn.
"""

from __future__ import annotations

from typing import Any, ClassVar

import crafter
import numpy as np
from crafter import constants

from automem.games.base import ActionSpec, Frame, Game, GameError, GameState, StepResult, Thing, UnknownAction

VIEW_W, VIEW_H = 9, 7  # local view in cells: x (west-east) by y (north-south)
HALF_W, HALF_H = VIEW_W // 2, VIEW_H // 2

#: the 22 achievements; progression = unlocked / 22 * 100 (BALROG)
ACHIEVEMENTS: tuple[str, ...] = tuple(constants.achievements)
assert len(ACHIEVEMENTS) == 22, "crafter's achievement list changed"

VITALS = ("health", "food", "drink", "energy")
_MAX = {name: info["max"] for name, info in constants.items.items()}

# materials are world ids 0 (outside the world) .. 12; objects follow in the SemanticView order
_MATERIALS: tuple[str | None, ...] = (None, *constants.materials)
_OBJECTS = ("player", "cow", "zombie", "skeleton", "arrow", "plant")
ID_NAMES: tuple[str, ...] = tuple(["void" if m is None else m for m in _MATERIALS] + list(_OBJECTS))
_ID = {name: i for i, name in enumerate(ID_NAMES)}
PLAYER_ID = _ID["player"]
PLANT_ID = _ID["plant"]
# the ground the player walks on is not worth listing (BALROG skips the same)
_NOT_LISTED = np.zeros(len(ID_NAMES), dtype=bool)
_NOT_LISTED[[_ID["void"], _ID["grass"], _ID["sand"], _ID["path"], PLAYER_ID]] = True
_CREATURES = {_ID["cow"], _ID["zombie"], _ID["skeleton"], _ID["arrow"]}

# glyph and 16-colour curses index per semantic id, for the TUI
_GLYPHS = {
    "void": (" ", 0),
    "water": ("~", 12),
    "grass": (".", 2),
    "stone": ("#", 7),
    "path": (":", 8),
    "sand": (",", 11),
    "tree": ("T", 10),
    "lava": ("^", 9),
    "coal": ("%", 8),
    "iron": ("I", 3),
    "diamond": ("*", 14),
    "table": ("=", 3),
    "furnace": ("F", 1),
    "player": ("@", 15),
    "cow": ("c", 3),
    "zombie": ("z", 10),
    "skeleton": ("s", 15),
    "arrow": ("-", 3),
    "plant": ("p", 2),
}
GLYPH_LEGEND: tuple[tuple[str, str], ...] = tuple((name, _GLYPHS[name][0]) for name in ID_NAMES)
_GLYPH_BYTES = np.frombuffer("".join(_GLYPHS[n][0] for n in ID_NAMES).encode("ascii"), dtype=np.uint8)
_GLYPH_COLORS = np.array([_GLYPHS[n][1] for n in ID_NAMES], dtype=np.int16)

# offsets of the view cells from the player, in the (x, y) order of a cropped array
_DX = np.repeat(np.arange(VIEW_W) - HALF_W, VIEW_H)
_DY = np.tile(np.arange(VIEW_H) - HALF_H, VIEW_W)
_DIST = np.abs(_DX) + np.abs(_DY)
_ORDER = np.arange(VIEW_W * VIEW_H)  # deterministic tie-break between equally near cells

_FACING = {(-1, 0): "west", (1, 0): "east", (0, -1): "north", (0, 1): "south"}
#: the player walks only on these (cows, zombies, trees, water, tables ... block; lava kills)
_WALKABLE = np.zeros(len(ID_NAMES), dtype=bool)
_WALKABLE[[_ID[m] for m in constants.walkable]] = True
MOVES: dict[str, tuple[int, int]] = {
    "move_left": (-1, 0),
    "move_right": (1, 0),
    "move_up": (0, -1),
    "move_down": (0, 1),
}


def _check_ids(env: crafter.Env) -> None:
    """Our id table must match the env's semantic ids (materials, then object classes)."""
    mats = env._world._mat_ids
    objs = {cls.__name__.lower(): i for cls, i in env._sem_view._obj_ids.items()}
    for i, name in enumerate(ID_NAMES):
        expected = mats.get(None if name == "void" else name, objs.get(name))
        if expected != i:
            raise GameError(f"crafter's semantic ids changed ({name}: {expected} != {i})")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _requirements(uses: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in uses.items())


def _action_specs() -> list[ActionSpec]:
    place, make = constants.place, constants.make
    descriptions = {
        "noop": "do nothing this step",
        "move_left": "move west (left); if blocked, just turn to face west",
        "move_right": "move east (right); if blocked, just turn to face east",
        "move_up": "move north (up); if blocked, just turn to face north",
        "move_down": "move south (down); if blocked, just turn to face south",
        "do": (
            "interact with the faced cell: collect tree (wood), stone/coal (need wood pickaxe), "
            "iron (stone pickaxe), diamond (iron pickaxe), sapling from grass (sometimes); "
            "drink water; hit cows to eat them, eat ripe plants; attack zombies and skeletons"
        ),
        "sleep": "sleep until energy is full (wakes when hurt); safest inside a shelter of stone",
    }
    for name, info in place.items():
        where = ", ".join(info["where"])
        what = "plant a sapling" if name == "plant" else f"place {_article(name)} {name}"
        descriptions[f"place_{name}"] = f"{what} on the faced cell (needs {_requirements(info['uses'])}; onto {where})"
    for name, info in make.items():
        near = " and a ".join(info["nearby"])
        item = name.replace("_", " ")
        descriptions[f"make_{name}"] = (
            f"craft {_article(item)} {item} (needs {_requirements(info['uses'])}; next to a {near}, diagonals count)"
        )
    return [ActionSpec(a, descriptions[a]) for a in constants.actions]


ACTION_SPECS: tuple[ActionSpec, ...] = tuple(_action_specs())
_ACTION_INDEX = {spec.name: i for i, spec in enumerate(ACTION_SPECS)}


def crop_view(semantic: np.ndarray, pos: Any) -> np.ndarray:
    """The 9x7 (x, y) local view centred on ``pos``; cells outside the world are 0 (void)."""
    x, y = int(pos[0]), int(pos[1])
    out = np.zeros((VIEW_W, VIEW_H), dtype=semantic.dtype)
    x0, y0 = x - HALF_W, y - HALF_H
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + VIEW_W, semantic.shape[0]), min(y0 + VIEW_H, semantic.shape[1])
    if sx0 < sx1 and sy0 < sy1:
        out[sx0 - x0 : sx1 - x0, sy0 - y0 : sy1 - y0] = semantic[sx0:sx1, sy0:sy1]
    return out


def direction_text(dx: int, dy: int) -> str:
    """``2 steps to your north-west (1 north, 1 west)`` for an offset (y grows southwards)."""
    ns = "north" if dy < 0 else "south" if dy > 0 else ""
    ew = "west" if dx < 0 else "east" if dx > 0 else ""
    dist = abs(dx) + abs(dy)
    steps = f"{dist} step{'s' if dist != 1 else ''}"
    if ns and ew:
        return f"{steps} to your {ns}-{ew} ({abs(dy)} {ns}, {abs(dx)} {ew})"
    return f"{steps} to your {ns or ew}"


def describe_view(view: np.ndarray, ripe_plant: bool | None = None) -> list[str]:
    """``- tree 2 steps to your north`` lines: the nearest cell of each kind in the view."""
    ids = view.ravel()
    listed = ~_NOT_LISTED[ids]
    if not listed.any():
        return []
    cand = ids[listed]
    dist = _DIST[listed]
    cells = _ORDER[listed]
    order = np.lexsort((cells, dist, cand))
    kinds, first = np.unique(cand[order], return_index=True)
    counts = np.bincount(cand, minlength=len(ID_NAMES))
    found = []
    for kind, i in zip(kinds.tolist(), first.tolist(), strict=True):
        cell = int(cells[order[i]])
        found.append((int(dist[order[i]]), ID_NAMES[kind], kind, int(_DX[cell]), int(_DY[cell])))
    found.sort()
    lines = []
    for _, name, kind, dx, dy in found:
        label = "ripe plant" if kind == PLANT_ID and ripe_plant else name
        extra = f", {counts[kind]} in view" if kind in _CREATURES and counts[kind] > 1 else ""
        lines.append(f"- {label} {direction_text(dx, dy)}{extra}")
    return lines


def daylight_text(daylight: float, step: int) -> str:
    """Crafter's day lasts 300 steps: brightest at step 60, darkest at 210 (mod 300)."""
    phase = step % 300
    darkening = 60 <= phase < 210
    if daylight > 0.5:
        label = "day"
    elif daylight < 0.15:
        label = "night"
    else:
        label = "dusk" if darkening else "dawn"
    trend = "getting darker" if darkening else "getting lighter"
    return f"It is {label} (daylight {round(daylight * 100)}%, {trend})."


class CrafterGame(Game):
    name: ClassVar[str] = "crafter"
    tasks: ClassVar[tuple[str, ...]] = ("default",)
    default_task: ClassVar[str] = "default"

    def __init__(self, task: str | None = None) -> None:
        if task not in (None, "default"):
            raise GameError(f"unknown crafter task {task!r}; choose one of: default")
        super().__init__(task)
        self.seed: int | None = None
        self._env: crafter.Env | None = None
        self._view: np.ndarray | None = None
        self._unlocked: list[str] = []
        self._obs_text: str | None = None
        self._frame: Frame | None = None

    @property
    def actions(self) -> list[ActionSpec]:
        return list(ACTION_SPECS)

    def reset(self, seed: int) -> str:
        # a fresh Env per episode: Crafter derives the world from (seed, episode number)
        env = crafter.Env(seed=seed)  # default length 10000 steps, as in the benchmark
        env.reset()
        _order_chunks(env._world)
        if self._env is None:
            _check_ids(env)
        self._env, self.seed = env, seed
        self.done, self.ended_reason = False, None
        self._unlocked = []
        # reset() returns only pixels; the semantic map is what step() puts in info
        self._set_view(env._sem_view(), env._player.pos)
        return self.observation()

    def step(self, action: str) -> StepResult:
        env = self._require_env()
        if self.done:
            raise GameError(f"the game is over ({self.ended_reason}); reset to play again")
        index = _ACTION_INDEX.get(action)
        if index is None:
            raise UnknownAction(f"unknown action {action!r} for crafter")
        _, reward, done, info = env.step(index)
        self._set_view(info["semantic"], info["player_pos"])
        unlocked = [a for a in ACHIEVEMENTS if info["achievements"][a] > 0 and a not in self._unlocked]
        self._unlocked.extend(unlocked)
        if done:
            self.done = True
            self.ended_reason = "died" if env._player.health <= 0 else "max steps of the env"
        step_info: dict[str, Any] = {"env_steps": env._step}
        if unlocked:
            step_info["unlocked"] = unlocked
        return StepResult(self.observation(), float(reward), self.done, step_info)

    def observation(self) -> str:
        if self._obs_text is None:
            self._obs_text = self._render_text()
        return self._obs_text

    def progression(self) -> float:
        return 100.0 * len(self._unlocked) / len(ACHIEVEMENTS)

    def achievements(self) -> list[str]:
        return list(self._unlocked)

    def frame(self) -> Frame:
        if self._frame is None:
            env, view = self._require_env(), self._require_view()
            grid = view.T  # (y, x): one row per line of the picture
            chars = _GLYPH_BYTES[grid].tobytes().decode("ascii")
            rows = [chars[i : i + VIEW_W] for i in range(0, VIEW_W * VIEW_H, VIEW_W)]
            fg = _GLYPH_COLORS[grid]
            player = env._player
            if player.sleeping:
                fg[HALF_H, HALF_W] = 4  # a blue @ while asleep
            fx, fy = (int(v) for v in player.facing)
            inv = player.inventory
            side = [
                f"Health {inv['health']}/9  Food {inv['food']}/9",
                f"Drink {inv['drink']}/9  Energy {inv['energy']}/9",
                f"Facing {_FACING[(fx, fy)]}" + (" (asleep)" if player.sleeping else ""),
                daylight_text(float(env._world.daylight), int(env._step)),
                f"Achievements {len(self._unlocked)}/22",
                "Inventory:",
                *([f"  {k}: {v}" for k, v in inv.items() if k not in VITALS and v > 0] or ["  empty"]),
            ]
            # the cursor marks the faced cell, the one `do` and `place_*` act on
            self._frame = Frame(rows=rows, fg=fg.tolist(), cursor=(HALF_H + fy, HALF_W + fx), side=side)
        return self._frame

    def rules(self) -> str:
        achievements = ", ".join(ACHIEVEMENTS)
        return (
            "You play Crafter, a 2D survival game (like a tiny Minecraft). Goal: unlock as many "
            f"of the 22 achievements as you can: {achievements}. Each counts once; progress is "
            "unlocked/22. Stay alive: health drops when food, drink or energy reach 0, and from "
            "zombies (on grass, more at night), skeletons (in caves, they shoot arrows) and lava. "
            "Eat cows or ripe plants, drink water, sleep when energy is low (block yourself in "
            "with stone first).\n"
            "The observation lists the nearest thing of each kind in your 9x7 view with its "
            "distance and direction (north is up), the cell you face (do, place_* act on it), "
            "your status (each 0-9), your inventory and the daylight. Moving into a blocked "
            "cell only turns you to face it. Typical order: wood -> table -> wood pickaxe -> "
            "stone -> stone pickaxe -> coal, iron, furnace -> iron tools -> diamond."
        )

    def close(self) -> None:
        self._env = None

    def state(self) -> GameState:
        env, view = self._require_env(), self._require_view()
        player = env._player
        inv = player.inventory
        grid = view.T  # (y, x) rows, as the frame draws them
        chars = _GLYPH_BYTES[grid].tobytes().decode("ascii")
        ids = view.ravel()
        listed = np.flatnonzero(~_NOT_LISTED[ids])
        # every listed cell, nearest first (the text names only the nearest of each kind)
        listed = listed[np.lexsort((listed, _DIST[listed]))]
        things = tuple(
            Thing(ID_NAMES[int(ids[c])], int(_DX[c]), int(_DY[c]), _GLYPHS[ID_NAMES[int(ids[c])]][0]) for c in listed
        )
        fx, fy = (int(v) for v in player.facing)
        return GameState(
            game=self.name,
            step=int(env._step),
            position=(int(player.pos[0]), int(player.pos[1])),
            vitals={v: int(inv[v]) for v in VITALS},
            vitals_max={v: int(_MAX[v]) for v in VITALS},
            conditions=("sleeping",) if player.sleeping else (),
            inventory={k: int(n) for k, n in inv.items() if k not in VITALS and n > 0},
            local_map=tuple(chars[i : i + VIEW_W] for i in range(0, VIEW_W * VIEW_H, VIEW_W)),
            walkable=_WALKABLE[grid],
            origin=(HALF_W, HALF_H),
            diagonal=False,
            things=things,
            achievements=tuple(self._unlocked),
            facing=(fx, fy),
            moves=dict(MOVES),
        )

    # --- helpers --------------------------------------------------------------------------

    def view(self) -> np.ndarray:
        """The current 9x7 semantic local view, indexed [x, y] (see ``ID_NAMES``)."""
        return self._require_view().copy()

    def _set_view(self, semantic: np.ndarray, pos: Any) -> None:
        self._view = crop_view(semantic, pos)
        self._obs_text = None
        self._frame = None

    def _require_env(self) -> crafter.Env:
        if self._env is None:
            raise GameError("call reset() first")
        return self._env

    def _require_view(self) -> np.ndarray:
        if self._view is None:
            raise GameError("call reset() first")
        return self._view

    def _ripe_plant_near(self, view: np.ndarray) -> bool | None:
        """Whether the nearest plant in view is ripe (only plants carry that state)."""
        if not (view == PLANT_ID).any():
            return None
        env = self._require_env()
        px, py = (int(v) for v in env._player.pos)
        cells = np.flatnonzero(view.ravel() == PLANT_ID)
        cell = cells[np.lexsort((cells, _DIST[cells]))[0]]
        _, obj = env._world[(px + int(_DX[cell]), py + int(_DY[cell]))]
        return bool(getattr(obj, "ripe", False))

    def _render_text(self) -> str:
        env, view = self._require_env(), self._require_view()
        player = env._player
        parts = []
        if player.health <= 0:
            parts.append("You died.")
        elif player.sleeping:
            parts.append("You are sleeping, and will not be able to take actions until energy is full.")
        seen = describe_view(view, self._ripe_plant_near(view))
        parts.append("You see:\n" + "\n".join(seen) if seen else "You see nothing away from you.")
        fx, fy = (int(v) for v in player.facing)
        target = ID_NAMES[int(view[HALF_W + fx, HALF_H + fy])]
        if target == "void":
            target = "the edge of the world"
        parts.append(f"You face {target} at your front ({_FACING[(fx, fy)]}).")
        inv = player.inventory
        parts.append("Your status:\n" + "\n".join(f"- {v}: {inv[v]}/{_MAX[v]}" for v in VITALS))
        items = [f"- {k}: {n}" for k, n in inv.items() if k not in VITALS and n > 0]
        parts.append("Your inventory:\n" + "\n".join(items) if items else "You have nothing in your inventory.")
        parts.append(daylight_text(float(env._world.daylight), int(env._step)))
        return "\n\n".join(parts)


class _InsertionOrderedSet(dict):  # type: ignore[type-arg]
    """The set methods Crafter's world uses on a chunk's objects, iterated in insertion order."""

    def add(self, item: object) -> None:
        self[item] = None

    def remove(self, item: object) -> None:
        del self[item]


def _order_chunks(world: Any) -> None:
    """Make a seed decide the whole episode.

    Crafter keeps each chunk's creatures in a ``set``; its objects hash by identity, so a set
    iterates in memory-address order, and every 10 steps the chunk balancer draws an index into
    that order to pick the cow or zombie to despawn. The same seed and actions then gave other
    worlds in other processes (`automem verify` found it: seed 47's cows differed from step 10
    on). Chunks rebuilt in the world's own creation order, kept in insertion order from here on,
    make the pick depend on the seed alone.
    """
    from collections import defaultdict

    chunks: defaultdict[Any, _InsertionOrderedSet] = defaultdict(_InsertionOrderedSet)
    for obj in world.objects:  # the order they were added: a list, not a set
        chunks[world.chunk_key(obj.pos)].add(obj)
    world._chunks = chunks
