"""The typed state of an NLE screen (NetHack, MiniHack): vitals, position, the level map and what is on it.

The map is read from NLE's ``glyphs`` (what each cell shows), not from the terminal characters, so
a ``+`` that is a door and one that is a spellbook are told apart. Cells are remembered as NetHack
remembers them: a room seen earlier stays on the map after the player leaves it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from nle import nethack

from automem.games.base import GameState, Thing

if TYPE_CHECKING:
    from automem.games.nle_common import Screen

MAP_ROWS, MAP_COLS = 21, 79

# NetHack 3.6's defsyms order (display.h); only the indexes the helpers reason about
S_STONE, S_NDOOR, S_VODOOR, S_HODOOR, S_VCDOOR, S_HCDOOR = 0, 12, 13, 14, 15, 16
S_TREE, S_ROOM, S_DARKROOM, S_CORR, S_LITCORR = 18, 19, 20, 21, 22
S_UPSTAIR, S_DNSTAIR, S_UPLADDER, S_DNLADDER = 23, 24, 25, 26
S_ALTAR, S_GRAVE, S_THRONE, S_SINK, S_FOUNTAIN, S_POOL, S_ICE, S_LAVA = 27, 28, 29, 30, 31, 32, 33, 34
S_VODBRIDGE, S_HODBRIDGE, S_AIR, S_CLOUD = 35, 36, 39, 40
S_FIRST_TRAP, S_LAST_TRAP = 42, 64

#: floor-like map symbols the player can step onto (traps too, they are dangers, not walls)
_WALKABLE_CMAP = frozenset(
    {S_NDOOR, S_VODOOR, S_HODOOR, S_ROOM, S_DARKROOM, S_CORR, S_LITCORR, S_UPSTAIR, S_DNSTAIR, S_UPLADDER,
     S_DNLADDER, S_ALTAR, S_GRAVE, S_THRONE, S_SINK, S_FOUNTAIN, S_ICE, S_VODBRIDGE, S_HODBRIDGE, S_AIR,
     S_CLOUD, *range(S_FIRST_TRAP, S_LAST_TRAP + 1)}
)  # fmt: skip
_FEATURES = {
    S_DNSTAIR: "stairs down",
    S_UPSTAIR: "stairs up",
    S_DNLADDER: "ladder down",
    S_UPLADDER: "ladder up",
    S_VCDOOR: "closed door",
    S_HCDOOR: "closed door",
    S_VODOOR: "open door",
    S_HODOOR: "open door",
    S_FOUNTAIN: "fountain",
    S_ALTAR: "altar",
    S_SINK: "sink",
    S_THRONE: "throne",
    S_GRAVE: "grave",
    S_POOL: "water",
    S_LAVA: "lava",
}
_ITEM_CLASSES = {
    ")": "weapon",
    "[": "armor",
    "%": "food",
    "?": "scroll",
    "!": "potion",
    "/": "wand",
    "=": "ring",
    '"': "amulet",
    "(": "tool",
    "$": "gold",
    "*": "gem or rock",
    "+": "spellbook",
    "`": "boulder",
    "0": "iron ball",
    "_": "iron chain",
}
#: NLE's BL_HUNGER is NetHack's u.uhs: 0 satiated, 1 not hungry, 2 hungry .. 6 starved
HUNGER_WORDS = {0: "Satiated", 2: "Hungry", 3: "Weak", 4: "Fainting", 5: "Fainted", 6: "Starved"}
HUNGRY = 2


def _glyph_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per glyph id: its map symbol (-1 when none), whether it is a monster, whether it is an object."""
    cmap = np.full(nethack.MAX_GLYPH, -1, dtype=np.int16)
    monster = np.zeros(nethack.MAX_GLYPH, dtype=bool)
    obj = np.zeros(nethack.MAX_GLYPH, dtype=bool)
    for g in range(nethack.MAX_GLYPH):
        if nethack.glyph_is_cmap(g):  # traps are map symbols too (42-64)
            cmap[g] = nethack.glyph_to_cmap(g)
        monster[g] = bool(nethack.glyph_is_monster(g))
        obj[g] = bool(nethack.glyph_is_object(g))
    return cmap, monster, obj


_CMAP, _MONSTER, _OBJECT = _glyph_tables()
# indexed by map symbol (0-95); -1 (no symbol: a monster, an object) wraps to the last entry, kept False
_WALKABLE = np.zeros(128, dtype=bool)
_WALKABLE[list(_WALKABLE_CMAP)] = True
_NOTABLE = np.zeros_like(_WALKABLE)
_NOTABLE[[*_FEATURES, *range(S_FIRST_TRAP, S_LAST_TRAP + 1)]] = True


def _monster_name(glyph: int) -> str:
    if nethack.glyph_is_pet(glyph):
        return "pet " + nethack.permonst(nethack.glyph_to_mon(glyph)).mname
    return "monster " + nethack.permonst(nethack.glyph_to_mon(glyph)).mname


def _quantity(text: str) -> tuple[str, int]:
    """``2 uncursed food rations`` -> (``uncursed food rations``, 2); ``a katana`` counts 1."""
    head, _, rest = text.partition(" ")
    if head.isdigit() and rest:
        return rest, int(head)
    return (rest if head in ("a", "an", "the") and rest else text), 1


def nle_state(
    game: str,
    screen: Screen,
    rows: list[str],
    inventory: list[str],
    moves: dict[str, tuple[int, int]],
    achievements: tuple[str, ...],
    message: str,
) -> GameState:
    glyphs = screen.glyphs
    b = screen.blstats
    x, y = int(b[nethack.NLE_BL_X]), int(b[nethack.NLE_BL_Y])
    cmap = _CMAP[glyphs]
    monster = _MONSTER[glyphs]
    obj = _OBJECT[glyphs]
    chars = [r[:MAP_COLS] for r in rows[1 : 1 + MAP_ROWS]]
    boulder = obj & (screen.chars[1 : 1 + MAP_ROWS, :MAP_COLS] == ord("`"))
    walkable = _WALKABLE[cmap] | (obj & ~boulder)
    # monsters move and stand on floor: a path may lead through them (passable_directions says who is there)
    walkable |= monster
    walkable[y, x] = True  # the player's own cell
    notable = _NOTABLE[cmap] | monster | obj
    notable[y, x] = False
    things: list[Thing] = []
    for r, c in np.argwhere(notable).tolist():  # a few dozen cells; the other ~1,600 never reach Python
        sym, g, ch = int(cmap[r, c]), int(glyphs[r, c]), chars[r][c]
        if monster[r, c]:
            kind = _monster_name(g)
        elif obj[r, c]:
            kind = _ITEM_CLASSES.get(ch, "item")
        else:
            kind = _FEATURES.get(sym, "trap")
        things.append(Thing(kind, c - x, r - y, ch))
    things.sort(key=lambda t: (max(abs(t.dx), abs(t.dy)), t.dy, t.dx))
    hunger = HUNGER_WORDS.get(int(b[nethack.NLE_BL_HUNGER]), "")
    conditions = (hunger,) if hunger else ()
    items: dict[str, int] = {}
    for line in inventory:
        name, count = _quantity(line.partition(" - ")[2])
        items[name] = items.get(name, 0) + count
    return GameState(
        game=game,
        step=int(b[nethack.NLE_BL_TIME]),
        position=(x, y),
        vitals={
            "hp": int(b[nethack.NLE_BL_HP]),
            "power": int(b[nethack.NLE_BL_ENE]),
            "hunger": int(b[nethack.NLE_BL_HUNGER]),
            "xp_level": int(b[nethack.NLE_BL_XP]),
            "gold": int(b[nethack.NLE_BL_GOLD]),
            "ac": int(b[nethack.NLE_BL_AC]),
        },
        vitals_max={"hp": int(b[nethack.NLE_BL_HPMAX]), "power": int(b[nethack.NLE_BL_ENEMAX])},
        conditions=conditions,
        inventory=items,
        local_map=tuple(chars),
        walkable=walkable,
        origin=(x, y),
        diagonal=True,
        things=tuple(things),
        depth=int(b[nethack.NLE_BL_DEPTH]),
        achievements=achievements,
        message=message,
        moves=moves,
    )
