"""What NetHack and MiniHack share: the word actions, the terminal reading and the NLE adapter.

Both games run on the NetHack Learning Environment (NLE). The agent reads the terminal NLE keeps
(``tty_chars``), so the text observation and the TUI frame come from the same 24x80 screen:

* the top line is the message line, the bottom two lines are the status lines;
* rows 1-21 show the map (and any menu or text window NetHack draws over it);
* the inventory comes from NLE's ``inv_letters``/``inv_strs``.

NLE reuses its observation arrays between steps, so everything kept is copied right after a step.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import load_env_creator
from nle import nethack

from automem.games.base import ActionSpec, Frame, Game, GameError, GameState, StepResult, UnknownAction

TTY_ROWS, TTY_COLS = 24, 80
MAP_FIRST_ROW, MAP_LAST_ROW = 1, 21  # rows 22-23 are the status lines
#: where ``_render_text``'s parts start: the map has blank rows of its own, so blank lines alone
#: do not separate the parts
_PART_START = re.compile(r"\n\n(?=(?:Status|Inventory|Map|Cursor):)")
MORE = b"--More--"
#: a bound on automatic --More-- presses in one step: a long death screen needs a dozen at most
MAX_MORE_PRESSES = 24

KEY_ENTER = ord("\r")
KEY_ESC = 27

# Only what the adapter reads: fewer keys make NLE's own per-step copying cheaper.
OBSERVATION_KEYS = (
    "glyphs",
    "blstats",
    "message",
    "inv_strs",
    "inv_letters",
    "tty_chars",
    "tty_colors",
    "tty_cursor",
)


def _meta(c: str) -> int:
    return 0x80 | ord(c)


def _ctrl(c: str) -> int:
    return 0x1F & ord(c)


_DIRS = (
    ("north", "k"),
    ("south", "j"),
    ("east", "l"),
    ("west", "h"),
    ("northeast", "u"),
    ("northwest", "y"),
    ("southeast", "n"),
    ("southwest", "b"),
)

#: one-step movement actions -> (dx, dy), for helpers that name a direction to walk
_MOVE_OFFSETS = {
    "north": (0, -1),
    "south": (0, 1),
    "east": (1, 0),
    "west": (-1, 0),
    "northeast": (1, -1),
    "northwest": (-1, -1),
    "southeast": (1, 1),
    "southwest": (-1, 1),
}
#: word actions: (name, key code, description). Names follow BALROG's NLE vocabulary.
WORD_ACTIONS: tuple[tuple[str, int, str], ...] = (
    *((name, ord(key), f"move one step {name} (or attack a monster there)") for name, key in _DIRS),
    *((f"far {name}", ord(key.upper()), f"run {name} until something interesting is seen") for name, key in _DIRS),
    ("up", ord("<"), "go up a staircase (stand on <)"),
    ("down", ord(">"), "go down a staircase (stand on >)"),
    ("wait", ord("."), "rest one turn doing nothing"),
    ("search", ord("s"), "search adjacent squares for hidden doors and passages (takes a turn)"),
    ("more", KEY_ENTER, "press Enter: continue a --More-- or confirm typed text"),
    ("esc", KEY_ESC, "cancel the current prompt or close a menu"),
    ("space", ord(" "), "press space: dismiss a message or menu page"),
    ("open", ord("o"), "open a door (then give the direction)"),
    ("close", ord("c"), "close a door (then give the direction)"),
    ("kick", _ctrl("d"), "kick a door, object or monster (then give the direction)"),
    ("force", _meta("f"), "force a lock with your weapon"),
    ("untrap", _meta("u"), "disarm a trap or open a stuck box (then give the direction)"),
    ("fight", ord("F"), "fight in a direction even if no monster is seen there"),
    ("fire", ord("f"), "fire your quivered ammunition (then give the direction)"),
    ("throw", ord("t"), "throw an item (then its letter and a direction)"),
    ("eat", ord("e"), "eat something (then its letter; eat when Hungry)"),
    ("quaff", ord("q"), "drink a potion (then its letter)"),
    ("read", ord("r"), "read a scroll or spellbook (then its letter)"),
    ("zap", ord("z"), "zap a wand (then its letter and a direction)"),
    ("apply", ord("a"), "apply or use a tool (then its letter)"),
    ("wear", ord("W"), "wear armor (then its letter)"),
    ("takeoff", ord("T"), "take off armor (then its letter)"),
    ("takeoffall", ord("A"), "take off all armor"),
    ("puton", ord("P"), "put on a ring or amulet (then its letter)"),
    ("remove", ord("R"), "remove a ring or amulet (then its letter)"),
    ("wield", ord("w"), "wield a weapon (then its letter, - for bare hands)"),
    ("swap", ord("x"), "swap your wielded and secondary weapons"),
    ("twoweapon", ord("X"), "toggle two-weapon combat"),
    ("quiver", ord("Q"), "choose ammunition for the quiver (then its letter)"),
    ("pickup", ord(","), "pick up things here"),
    ("drop", ord("d"), "drop an item (then its letter)"),
    ("droptype", ord("D"), "drop several items through a menu"),
    ("loot", _meta("l"), "open a box or chest here"),
    ("tip", _meta("T"), "tip over a container to empty it"),
    ("pray", _meta("p"), "pray to your god (can fix low HP or hunger, at most every ~1000 turns)"),
    ("offer", _meta("o"), "sacrifice a corpse on an altar"),
    ("engrave", ord("E"), "engrave on the floor (e.g. Elbereth scares most monsters)"),
    ("cast", ord("Z"), "cast a known spell"),
    ("enhance", _meta("e"), "advance weapon or spell skills"),
    ("pay", ord("p"), "pay a shopkeeper"),
    ("chat", _meta("c"), "talk to someone (then the direction)"),
    ("dip", _meta("d"), "dip an object into something"),
    ("rub", _meta("r"), "rub a lamp or a stone"),
    ("invoke", _meta("i"), "invoke an artifact's special power"),
    ("jump", _meta("j"), "jump to a location (if you can)"),
    ("sit", _meta("s"), "sit down"),
    ("ride", _meta("R"), "mount or dismount a saddled steed"),
    ("turn", _meta("t"), "turn undead (knights and priests)"),
    ("monster", _meta("m"), "use your monster form's special ability"),
    ("wipe", _meta("w"), "wipe off your face"),
    ("travel", ord("_"), "travel to a spot: then < or > picks a staircase, . confirms"),
    ("inventory", ord("i"), "show the inventory menu (close it with esc)"),
    ("look", ord(":"), "look at what is here"),
    ("attributes", _ctrl("x"), "show your attributes and status"),
    ("seetrap", ord("^"), "identify an adjacent trap (then the direction)"),
    ("minus", ord("-"), "the - key (bare hands / nothing in item prompts)"),
)

_LETTER_HINTS = {"y": "yes in a [yn] question", "n": "no in a [yn] question"}

#: single keys to answer prompts: item letters, y/n, digits for counts and menus
KEY_ACTIONS: tuple[tuple[str, int, str], ...] = (
    *(
        (c, ord(c), f"key {c}: {_LETTER_HINTS[c]}, or item {c} in a prompt or menu")
        if c in _LETTER_HINTS
        else (c, ord(c), f"key {c}: item {c} in a prompt or menu")
        for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    ),
    *((d, ord(d), f"key {d}: a count or a menu choice") for d in "0123456789"),
)

#: every key code the NetHack vocabulary can send; the NetHack env is built with exactly these
ALL_KEYS: tuple[int, ...] = tuple(sorted({code for _, code, _ in WORD_ACTIONS + KEY_ACTIONS}))


def make_registered_env(env_id: str, **kwargs: Any) -> gym.Env:
    """Instantiate a registered env without gymnasium's wrappers.

    ``gym.make`` would swallow ``max_episode_steps`` for its own TimeLimit wrapper instead of
    passing it to NLE, and the passive checker wrapper only adds per-step overhead.
    """
    spec = gym.spec(env_id)
    assert isinstance(spec.entry_point, str)
    creator = load_env_creator(spec.entry_point)
    return creator(**{**spec.kwargs, **kwargs})


def nle_seeds(seed: int) -> tuple[int, int]:
    """NetHack's two RNG seeds (core, display) for one episode seed."""
    core = int(seed) % (2**63)
    return core, (core * 2654435761 + 1) % (2**63)


def decode_rows(chars: np.ndarray) -> list[str]:
    """Rows of a tty char array as strings (NLE pads with spaces; a NUL would be a bug upstream)."""
    data = chars.tobytes().replace(b"\0", b" ").decode("latin-1")
    width = chars.shape[1]
    return [data[i : i + width] for i in range(0, len(data), width)]


def inventory_lines(letters: np.ndarray, strs: np.ndarray) -> list[str]:
    """``a - a +0 katana (weapon in hand)`` lines from NLE's inventory arrays."""
    count = int(np.count_nonzero(letters))
    lines = []
    for i in range(count):
        text = strs[i].tobytes().split(b"\0", 1)[0].decode("latin-1")
        lines.append(f"{chr(letters[i])} - {text}")
    return lines


def more_position(chars: np.ndarray) -> tuple[int, int] | None:
    """(row, col) of a ``--More--`` on the screen, or None."""
    idx = chars.tobytes().find(MORE)
    if idx < 0:
        return None
    return divmod(idx, chars.shape[1])


def more_text(rows: list[str], message: str, pos: tuple[int, int]) -> str:
    """The text a ``--More--`` is waiting on.

    A top-line message is in NLE's message buffer. A text window drawn over the map (NLE leaves
    the message buffer empty then) has its ``--More--`` at the window's left edge on its last
    line, so the window is the block above it from that column on.
    """
    if message:
        return message
    row, col = pos
    if row == 0:
        return rows[0][:col].strip()
    lines = [r[col:].rstrip() for r in rows[:row]]
    return "\n".join(line for line in lines if line.strip())


@dataclass
class Screen:
    """One step's copy of what the adapter reads from NLE (NLE reuses its arrays)."""

    chars: np.ndarray
    colors: np.ndarray
    cursor: tuple[int, int]
    message: str
    blstats: np.ndarray
    inv_letters: np.ndarray
    inv_strs: np.ndarray
    glyphs: np.ndarray  # (21, 79) what each map cell shows, for the typed state

    @classmethod
    def capture(cls, obs: dict[str, np.ndarray]) -> Screen:
        cursor = obs["tty_cursor"]
        return cls(
            chars=obs["tty_chars"].copy(),
            colors=obs["tty_colors"].copy(),
            cursor=(int(cursor[0]), int(cursor[1])),
            message=_message(obs["message"]),
            blstats=obs["blstats"].copy(),
            inv_letters=obs["inv_letters"].copy(),
            inv_strs=obs["inv_strs"].copy(),
            glyphs=obs["glyphs"].copy(),
        )


def _message(buf: np.ndarray) -> str:
    return buf.tobytes().split(b"\0", 1)[0].decode("latin-1").strip()


class NLEGame(Game):
    """The adapter shared by NetHack and MiniHack: seeding, --More--, text and frame.

    Subclasses build the env (``_make_env``) and say which of the word/key actions exist
    (``_vocabulary``); the rest is common.
    """

    #: press Enter on --More-- ourselves (when the env has an Enter key) so the agent reads every
    #: message; MiniHack's tasks let NLE skip --More-- itself and keep only the last message
    auto_more: ClassVar[bool] = True

    def __init__(self, task: str | None = None, *, ttyrec_dir: str | None = None) -> None:
        """``ttyrec_dir``: a folder that does not exist yet, where NLE records each episode as a
        ttyrec (its own format 3, bz2); None records nothing."""
        super().__init__(task)
        self.seed: int | None = None
        self._ttyrec_dir = ttyrec_dir
        self._env = self._make_env()
        self._unwrapped: Any = self._env.unwrapped
        key_index = {int(code): i for i, code in reversed(list(enumerate(self._unwrapped.actions)))}
        self._action_index: dict[str, int] = {}
        specs = []
        for name, code, description in self._vocabulary():
            if code in key_index:
                self._action_index[name] = key_index[code]
                specs.append(ActionSpec(name, description))
        self._specs = specs
        self._more_index = key_index.get(KEY_ENTER) if self.auto_more else None
        self._screen: Screen | None = None
        self._messages: list[str] = []
        self._obs_text: str | None = None
        self._frame: Frame | None = None
        self._rows: list[str] | None = None
        self._state: GameState | None = None
        self._inventory: list[str] | None = None
        self.env_steps = 0

    # --- subclass hooks -------------------------------------------------------------------

    def _recording(self) -> dict[str, Any]:
        """The env's keyword arguments for recording (or not) a ttyrec of each episode."""
        if self._ttyrec_dir is None:
            return {"savedir": None}
        return {"savedir": self._ttyrec_dir, "save_ttyrec_every": 1}

    @abstractmethod
    def _make_env(self) -> gym.Env:
        """Build the NLE env for ``self.task`` (raise GameError for a bad task)."""

    @abstractmethod
    def _vocabulary(self) -> list[tuple[str, int, str]]:
        """Candidate (name, key, description) actions; those whose key the env lacks are dropped."""

    def _reset_env(self, seed: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset the (already seeded) env; a hook for envs with randomness outside NetHack."""
        return self._unwrapped.reset()

    def _on_screen(self, screen: Screen) -> None:  # noqa: B027 - optional hook
        """Called once per reset/step with the new screen (progress tracking)."""

    # --- Game protocol --------------------------------------------------------------------

    @property
    def actions(self) -> list[ActionSpec]:
        return list(self._specs)

    def reset(self, seed: int) -> str:
        self.seed = seed
        core, disp = nle_seeds(seed)
        # NLE applies seeds at the next reset, so seed first; reseed=False stops NetHack from
        # mixing in true randomness later, which would break reproducibility.
        self._unwrapped.seed(core, disp, reseed=False)
        obs, info = self._reset_env(seed)
        self.done, self.ended_reason = False, None
        self.env_steps = 0
        obs, _, done, info, pieces = self._press_more(obs, 0.0, False, info)
        self._capture(obs, pieces)
        if done:
            self._finish(info, truncated=False)
        return self.observation()

    def step(self, action: str) -> StepResult:
        if self._screen is None:
            raise GameError("call reset() before step()")
        if self.done:
            raise GameError(f"the game is over ({self.ended_reason}); reset to play again")
        index = self._action_index.get(action)
        if index is None:
            raise UnknownAction(f"unknown action {action!r} for {self.name}")
        obs, reward, terminated, truncated, info = self._unwrapped.step(index)
        self.env_steps += 1
        obs, reward, done, info, pieces = self._press_more(obs, float(reward), terminated or truncated, info)
        self._capture(obs, pieces)
        if done:
            self._finish(info, truncated=bool(truncated) or self._is_aborted(info))
        step_info: dict[str, Any] = {"env_steps": self.env_steps}
        if pieces:
            step_info["more_pressed"] = len(pieces)
        return StepResult(self.observation(), float(reward), self.done, step_info)

    def observation(self) -> str:
        if self._obs_text is None:
            self._obs_text = self._render_text()
        return self._obs_text

    def frame(self) -> Frame:
        if self._frame is None:
            screen = self._require_screen()
            self._frame = Frame(
                rows=self.rows(),
                # bit 3 is brightness; NLE may set higher bits for attributes, the palette has 16
                fg=(screen.colors.astype(np.int16) & 15).tolist(),
                cursor=screen.cursor,
                side=["Inventory:", *self.inventory()] if self.inventory() else ["Inventory: empty"],
            )
        return self._frame

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None  # type: ignore[assignment]

    def state(self) -> GameState:
        if self._state is None:
            # imported here: the glyph tables are built once, on the first typed state asked for
            from automem.games.nle_state import nle_state

            moves = {name: _MOVE_OFFSETS[name] for name in self._action_index if name in _MOVE_OFFSETS}
            self._state = nle_state(
                self.name,
                self._require_screen(),
                self.rows(),
                self.inventory(),
                moves,
                tuple(self.achievements()),
                self.message(),
            )
        return self._state

    # --- helpers --------------------------------------------------------------------------

    def rows(self) -> list[str]:
        """The 24 terminal rows of the current screen."""
        if self._rows is None:
            self._rows = decode_rows(self._require_screen().chars)
        return self._rows

    def inventory(self) -> list[str]:
        """``letter - description`` lines of the current inventory."""
        if self._inventory is None:
            screen = self._require_screen()
            self._inventory = inventory_lines(screen.inv_letters, screen.inv_strs)
        return self._inventory

    def message(self) -> str:
        """Every message since the last action, --More-- pages included, one per line."""
        return "\n".join(self._messages)

    def _require_screen(self) -> Screen:
        if self._screen is None:
            raise GameError("call reset() first")
        return self._screen

    def _press_more(
        self, obs: dict[str, np.ndarray], reward: float, done: bool, info: dict[str, Any]
    ) -> tuple[dict[str, np.ndarray], float, bool, dict[str, Any], list[str]]:
        """Answer --More-- with Enter (bounded), collecting each page's text."""
        pieces: list[str] = []
        if self._more_index is None:
            return obs, reward, done, info, pieces
        for _ in range(MAX_MORE_PRESSES):
            if done:
                break
            chars = obs["tty_chars"]
            pos = more_position(chars)
            if pos is None:
                break
            text = more_text(decode_rows(chars), _message(obs["message"]), pos)
            if text:
                pieces.append(text)
            obs, r, terminated, truncated, info = self._unwrapped.step(self._more_index)
            self.env_steps += 1
            reward += float(r)
            done = bool(terminated or truncated)
        return obs, reward, done, info, pieces

    def _capture(self, obs: dict[str, np.ndarray], pieces: list[str]) -> None:
        screen = Screen.capture(obs)
        self._screen = screen
        self._rows = self._inventory = None
        self._state = None
        self._obs_text = None
        self._frame = None
        current = screen.message
        if not current:
            # prompts and menus drawn on the top line are not always in NLE's message buffer
            top = self.rows()[0].strip()
            current = top
        self._messages = [*pieces, current] if current else pieces
        self._on_screen(screen)

    def _is_aborted(self, info: dict[str, Any]) -> bool:
        return int(info.get("end_status", 0)) == int(self._unwrapped.StepStatus.ABORTED)

    def _finish(self, info: dict[str, Any], truncated: bool) -> None:
        self.done = True
        status = int(info.get("end_status", 0))
        step_status = self._unwrapped.StepStatus
        if "TASK_SUCCESSFUL" in step_status.__members__ and status == int(step_status.TASK_SUCCESSFUL):
            self.ended_reason = "success"
        elif info.get("is_ascended"):
            self.ended_reason = "success"
        elif status == int(step_status.ABORTED) or truncated:
            self.ended_reason = "max steps of the env"
        else:
            how = self._unwrapped.nethack.how_done()
            if how == nethack.QUIT:
                self.ended_reason = "quit"
            elif how == nethack.ESCAPED:
                self.ended_reason = "escaped the dungeon"
            else:
                self.ended_reason = "died"

    def observation_parts(self, observation: str) -> list[str]:
        return _PART_START.split(observation.strip())

    def _render_text(self) -> str:
        rows = self.rows()
        screen = self._require_screen()
        message = self.message() or "(none)"
        inventory = "\n".join(self.inventory()) or "(empty)"
        map_rows = "\n".join(r.rstrip() for r in rows[MAP_FIRST_ROW : MAP_LAST_ROW + 1])
        status = "\n".join(r.rstrip() for r in rows[MAP_LAST_ROW + 1 :])
        row, col = screen.cursor
        return (
            f"Message:\n{message}\n\n"
            f"Status:\n{status}\n\n"
            f"Inventory:\n{inventory}\n\n"
            f"Map:\n{map_rows}\n\n"
            f"Cursor: x={col} y={row}"
        )


def screen_rules(prompts: bool = True) -> str:
    """How to read the observation, for the system prompt; ``prompts``: the agent answers questions."""
    message = "- Message: what the game just said (--More-- pages are continued for you)."
    if prompts:
        message += (
            '\n  A question such as "What do you want to eat? [fg or ?*]" waits for your answer: send the'
            "\n  item's letter as an action (e.g. f), y or n for yes/no questions, a direction word for"
            '\n  "In what direction?", or esc to cancel.'
        )
    return "\n".join(
        (
            "Each observation shows the game's 24x80 terminal:",
            message,
            "- Status: the two status lines (Dlvl dungeon level, $ gold, HP hit points(max), Pw power,",
            "  AC armor class (lower is better), Xp experience level/points, T turns, hunger if any).",
            "- Inventory: your items by letter.",
            "- Map: screen rows 1-21. @ is you, letters are monsters, . floor, # corridor, | and - walls,",
            "  + door or spellbook, < > stairs up/down, { fountain, } water or lava, ) weapon, [ armor,",
            '  % food, ? scroll, ! potion, / wand, = ring, " amulet, ( tool, $ gold, ^ trap, ` boulder.'
            + ("\n  Menus and text windows are drawn over the map; close them with esc." if prompts else ""),
            "- Cursor: x is the column, y the screen row (the map's first line is row 1); usually on @.",
            "Directions: north is up, east is right.",
        )
    )
