"""The game adapters against the real environments (Crafter, NetHack, MiniHack)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from automem.games import Frame, GameError, UnknownAction, game_names, get_game_class, make_game
from automem.games.crafter import (
    ACHIEVEMENTS,
    ID_NAMES,
    PLAYER_ID,
    VIEW_H,
    VIEW_W,
    CrafterGame,
    crop_view,
    describe_view,
    direction_text,
)
from automem.games.minihack import MiniHackGame, boxoban_available
from automem.games.nethack import DLVL_PROGRESS, XL_PROGRESS, NetHackGame, balrog_progression
from automem.games.nle_common import more_position, more_text

CRAFTER_ACTIONS = [
    "noop",
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "do",
    "sleep",
    "place_stone",
    "place_table",
    "place_furnace",
    "place_plant",
    "make_wood_pickaxe",
    "make_stone_pickaxe",
    "make_iron_pickaxe",
    "make_wood_sword",
    "make_stone_sword",
    "make_iron_sword",
]
MOVES = ["move_left", "move_up", "do", "move_right", "move_down", "do", "noop", "place_stone"]
NETHACK_PLAY = ["search", "far east", "west", "north", "i", "esc", "south", "far west", "look", "wait"]
COMPASS = {
    (-1, 0): "north",
    (1, 0): "south",
    (0, 1): "east",
    (0, -1): "west",
    (-1, 1): "northeast",
    (-1, -1): "northwest",
    (1, 1): "southeast",
    (1, -1): "southwest",
}


def play(game, seed: int, actions: list[str]) -> list[tuple[str, dict]]:
    """Observations and frames of one scripted episode."""
    out = [(game.reset(seed), game.frame().to_dict())]
    for action in actions:
        result = game.step(action)
        out.append((result.observation, game.frame().to_dict()))
        if result.done:
            break
    return out


def check_frame(frame: Frame, rows: int, cols: int) -> None:
    assert len(frame.rows) == rows and all(len(r) == cols for r in frame.rows)
    assert len(frame.fg) == rows and all(len(r) == cols for r in frame.fg)
    assert all(0 <= c <= 15 for r in frame.fg for c in r)
    if frame.cursor is not None:
        assert 0 <= frame.cursor[0] < rows and 0 <= frame.cursor[1] < cols
    assert Frame.from_dict(frame.to_dict()) == frame


# --- registry -------------------------------------------------------------------------------


def test_registry_lists_the_three_games() -> None:
    assert {"crafter", "minihack", "nethack"} <= set(game_names())
    assert get_game_class("crafter") is CrafterGame
    assert get_game_class("nethack") is NetHackGame
    assert get_game_class("minihack") is MiniHackGame


@pytest.mark.parametrize("name", ["crafter", "nethack", "minihack"])
def test_unknown_task_lists_the_choices(name: str) -> None:
    with pytest.raises(GameError, match="choose one of"):
        make_game(name, "no-such-task")


# --- crafter ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crafter_game():
    game = CrafterGame()
    game.reset(3)
    yield game
    game.close()


def test_crafter_actions_and_rules() -> None:
    game = CrafterGame()
    assert game.action_names() == CRAFTER_ACTIONS
    assert all(a.description for a in game.actions)
    described = {a.name: a.description for a in game.actions}
    assert "2 wood" in described["place_table"] and "table" in described["make_wood_pickaxe"]
    assert "furnace" in described["make_iron_pickaxe"]
    assert len(ACHIEVEMENTS) == 22 and "collect_diamond" in ACHIEVEMENTS
    assert "22 achievements" in game.rules()
    assert game.tasks == ("default",) and game.task == "default"


def test_crafter_same_seed_same_game_and_seeds_differ() -> None:
    first = play(CrafterGame(), 7, MOVES * 3)
    second = play(CrafterGame(), 7, MOVES * 3)
    assert first == second
    other = play(CrafterGame(), 8, MOVES[:2])
    assert other[0] != first[0]


def test_crafter_unknown_action_and_step_after_done(crafter_game: CrafterGame) -> None:
    with pytest.raises(UnknownAction):
        crafter_game.step("jump")
    game = CrafterGame()
    with pytest.raises(GameError):
        game.step("noop")  # before reset
    game.reset(1)
    game._env._length = 2  # end the episode quickly through the env's own step limit
    assert not game.step("noop").done
    assert game.step("noop").done
    assert game.ended_reason == "max steps of the env"
    with pytest.raises(GameError):
        game.step("noop")


def test_crafter_progression_counts_unlocked_achievements() -> None:
    game = CrafterGame()
    game.reset(2)
    assert game.progression() == 0.0 and game.achievements() == []
    env = game._env
    player = env._player
    target = (player.pos[0] + player.facing[0], player.pos[1] + player.facing[1])
    env._world[target] = "tree"  # put a tree in front of the player: `do` collects wood
    result = game.step("do")
    assert result.info["unlocked"] == ["collect_wood"]
    assert game.achievements() == ["collect_wood"]
    assert game.progression() == pytest.approx(100 / 22)
    assert "- wood: 1" in result.observation
    game.step("noop")
    assert game.progression() == pytest.approx(100 / 22)  # each achievement counts once


def test_crafter_text_only_describes_the_local_view(crafter_game: CrafterGame) -> None:
    env = crafter_game._env
    semantic = env._sem_view()
    view = crafter_game.view()
    assert view.shape == (VIEW_W, VIEW_H)
    assert view[VIEW_W // 2, VIEW_H // 2] == PLAYER_ID
    np.testing.assert_array_equal(view, crop_view(semantic, env._player.pos))
    text = crafter_game.observation()
    seen = re.findall(r"^- (?:ripe )?(\w+) \d+ steps? to your", text, flags=re.M)
    in_view = {ID_NAMES[i] for i in np.unique(view)}
    in_world = {ID_NAMES[i] for i in np.unique(semantic)}
    assert seen and set(seen) <= in_view
    for name in in_world - in_view - {"void"}:
        assert not re.search(rf"^- {name} ", text, flags=re.M), name
    for section in ("You see", "You face", "- health: ", "- food: ", "- drink: ", "- energy: ", "daylight"):
        assert section in text


def test_crafter_view_crop_and_directions() -> None:
    ids = {name: i for i, name in enumerate(ID_NAMES)}
    semantic = np.full((64, 64), ids["grass"], dtype=np.uint8)
    px, py = 30, 30
    semantic[px, py] = PLAYER_ID
    semantic[px + 5, py] = ids["diamond"]  # one column beyond the view's east edge
    semantic[px, py - 4] = ids["iron"]  # one row beyond the north edge
    semantic[px + 4, py + 3] = ids["table"]  # the south-east corner of the view
    semantic[px - 1, py - 1] = ids["tree"]
    view = crop_view(semantic, (px, py))
    lines = describe_view(view)
    assert lines == [
        "- tree 2 steps to your north-west (1 north, 1 west)",
        "- table 7 steps to your south-east (3 south, 4 east)",
    ]
    assert direction_text(0, -2) == "2 steps to your north"
    assert direction_text(1, 0) == "1 step to your east"
    # at the world's corner the missing cells are void and never described
    corner = crop_view(semantic, (0, 0))
    assert (corner[: VIEW_W // 2, :] == 0).all() and (corner[:, : VIEW_H // 2] == 0).all()


@settings(max_examples=60, deadline=None)
@given(
    x=st.integers(min_value=0, max_value=63),
    y=st.integers(min_value=0, max_value=63),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_crafter_crop_matches_a_naive_crop(x: int, y: int, seed: int) -> None:
    semantic = np.random.default_rng(seed).integers(1, len(ID_NAMES), size=(64, 64), dtype=np.uint8)
    view = crop_view(semantic, (x, y))
    for i in range(VIEW_W):
        for j in range(VIEW_H):
            wx, wy = x + i - VIEW_W // 2, y + j - VIEW_H // 2
            inside = 0 <= wx < 64 and 0 <= wy < 64
            assert view[i, j] == (semantic[wx, wy] if inside else 0)


def test_crafter_frame(crafter_game: CrafterGame) -> None:
    frame = crafter_game.frame()
    check_frame(frame, VIEW_H, VIEW_W)
    assert frame.rows[VIEW_H // 2][VIEW_W // 2] == "@"
    row, col = frame.cursor
    assert abs(row - VIEW_H // 2) + abs(col - VIEW_W // 2) == 1  # the faced cell
    assert any(line.startswith("Health") for line in frame.side) and "Inventory:" in frame.side
    assert crafter_game.frame() is frame  # cached until the next step


# --- nethack ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nethack_game():
    game = NetHackGame()
    yield game
    game.close()


def test_nethack_actions(nethack_game: NetHackGame) -> None:
    names = nethack_game.action_names()
    assert len(names) == len(set(names))
    required = [
        "north", "south", "east", "west", "northeast", "northwest", "southeast", "southwest",
        "far north", "far east", "far southwest", "search", "eat", "open", "close", "kick",
        "pickup", "drop", "wear", "wield", "quaff", "read", "zap", "apply", "pray", "up", "down",
        "wait", "esc", "inventory", "look", "more", "y", "n",
    ]  # fmt: skip
    assert set(required) <= set(names)
    assert set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") <= set(names)
    assert all(a.description for a in nethack_game.actions)
    assert "NetHack" in nethack_game.rules()


def test_nethack_tasks() -> None:
    assert NetHackGame.default_task == "NetHackScore-v0"
    assert NetHackGame("NetHackStaircase").task == "NetHackStaircase-v0"
    with pytest.raises(GameError, match="seed"):
        NetHackGame("NetHackChallenge-v0")


def test_nethack_same_seed_same_game_and_seeds_differ() -> None:
    first = play(NetHackGame(), 11, NETHACK_PLAY * 3)
    second = play(NetHackGame(), 11, NETHACK_PLAY * 3)
    assert first == second
    other = play(NetHackGame(), 12, NETHACK_PLAY)
    assert other[0] != first[0]


def test_nethack_reset_reuses_the_env_reproducibly(nethack_game: NetHackGame) -> None:
    first = play(nethack_game, 21, NETHACK_PLAY)
    play(nethack_game, 22, NETHACK_PLAY)
    assert play(nethack_game, 21, NETHACK_PLAY) == first


def test_nethack_text_has_message_status_inventory_map_cursor(nethack_game: NetHackGame) -> None:
    text = nethack_game.reset(5)
    assert text.startswith("Message:\n") and "welcome to NetHack" in text
    status = text.split("Status:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(status) == 2 and status[1].startswith("Dlvl:1")
    inventory = text.split("Inventory:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert inventory and all(re.match(r"^[a-zA-Z$#] - \S", line) for line in inventory)
    assert "\nMap:\n" in text and "@" in text.split("Map:\n", 1)[1]
    row, col = nethack_game.frame().cursor
    assert f"Cursor: x={col} y={row}" in text
    assert nethack_game.rows()[row][col] == "@"


def test_nethack_more_is_pressed_and_the_whole_message_kept(nethack_game: NetHackGame) -> None:
    # seed 5 plays a samurai: wielding the wakizashi prints two messages with a --More-- between
    nethack_game.reset(5)
    prompt = nethack_game.step("w")
    assert "What do you want to wield?" in prompt.observation
    result = nethack_game.step("b")
    assert result.info["more_pressed"] >= 1
    message = nethack_game.message()
    assert "wakizashi (weapon in hand)" in message and "katana (alternate weapon" in message
    assert "--More--" not in result.observation
    assert more_position(nethack_game._screen.chars) is None


def test_more_text_reads_top_line_and_windows() -> None:
    assert more_text(["You hit it.--More--"], "You hit it.", (0, 11)) == "You hit it."
    assert more_text(["You hit it.--More--"], "", (0, 11)) == "You hit it."
    rows = [
        "map...   Things that are here:",
        "map...   a +1 long sword",
        "map...   --More--",
    ]
    assert more_text(rows, "", (2, 9)) == "Things that are here:\na +1 long sword"


def test_nethack_frame_and_game_over() -> None:
    game = NetHackGame(max_episode_steps=4)
    game.reset(3)
    check_frame(game.frame(), 24, 80)
    assert game.frame().side[0].startswith("Inventory")
    for _ in range(4):
        result = game.step("search")
    assert result.done and game.done
    assert game.ended_reason == "max steps of the env"
    with pytest.raises(GameError):
        game.step("search")
    game.reset(1)  # a new episode on the same instance
    assert not game.done and game.ended_reason is None
    with pytest.raises(UnknownAction):
        game.step("fly")


def test_balrog_nethack_progression() -> None:
    assert len(DLVL_PROGRESS) == 50 and len(XL_PROGRESS) == 30
    assert list(DLVL_PROGRESS) == sorted(DLVL_PROGRESS) and list(XL_PROGRESS) == sorted(XL_PROGRESS)
    assert balrog_progression(1, 1) == 0.0
    assert balrog_progression(5, 1) == pytest.approx(100 * DLVL_PROGRESS[4])
    assert balrog_progression(5, 10) == pytest.approx(100 * XL_PROGRESS[9])  # the max of the two
    assert balrog_progression(60, 40) == pytest.approx(100 * DLVL_PROGRESS[-1])
    assert balrog_progression(1, 1, ascended=True) == 100.0
    game = NetHackGame()
    game.reset(4)
    assert game.progression() == 0.0 and game.achievements() == []


# --- minihack ---------------------------------------------------------------------------------


def walk_to_stairs(game: MiniHackGame, limit: int = 40) -> None:
    """Greedy moves from @ to > (enough in an empty room)."""
    for _ in range(limit):
        rows = game.rows()[1:22]
        me = next((r, line.index("@")) for r, line in enumerate(rows) if "@" in line)
        goal = next((r, line.index(">")) for r, line in enumerate(rows) if ">" in line)
        step = ((goal[0] > me[0]) - (goal[0] < me[0]), (goal[1] > me[1]) - (goal[1] < me[1]))
        if game.step(COMPASS[step]).done:
            return


def test_minihack_task_names() -> None:
    assert MiniHackGame.default_task == "Room-5x5"
    assert MiniHackGame().task == "Room-5x5"
    assert MiniHackGame("MiniHack-Room-5x5-v0").task == "Room-5x5"
    assert MiniHackGame("minihack-keyroom-s5-v0").task == "KeyRoom-S5"
    balrog = {
        "Boxoban-Hard", "Boxoban-Medium", "MazeWalk-9x9", "MazeWalk-15x15", "Corridor-R3",
        "CorridorBattle-Dark", "Quest-Easy", "Quest-Medium",
    }  # fmt: skip
    assert balrog | {"Room-5x5", "KeyRoom-S5"} <= set(MiniHackGame.tasks)


@pytest.mark.parametrize("task", MiniHackGame.tasks)
def test_minihack_tasks_start_and_play(task: str) -> None:
    if task.startswith("Boxoban") and not boxoban_available():
        pytest.skip("Boxoban level files are not installed (a separate download)")
    game = MiniHackGame(task)
    text = game.reset(0)
    assert "Map:\n" in text and "Status:\n" in text
    assert {"north", "south", "east", "west"} <= set(game.action_names())
    check_frame(game.frame(), 24, 80)
    game.step("north")
    assert task.split("-")[0] in game.rules()
    game.close()


def test_minihack_boxoban_without_levels_is_a_clear_error() -> None:
    if boxoban_available():
        pytest.skip("Boxoban level files are installed here")
    with pytest.raises(GameError, match="Boxoban level files"):
        MiniHackGame("Boxoban-Hard")


def test_minihack_success_gives_full_progression() -> None:
    game = MiniHackGame("Room-5x5")
    game.reset(3)
    assert game.progression() == 0.0
    walk_to_stairs(game)
    assert game.done and game.ended_reason == "success"
    assert game.progression() == 100.0 and game.achievements() == ["success"]
    with pytest.raises(GameError):
        game.step("north")


def test_minihack_same_seed_same_game_and_seeds_differ() -> None:
    moves = ["north", "east", "south", "west", "northeast", "southwest"] * 2
    first = play(MiniHackGame("Quest-Easy"), 9, moves)
    assert play(MiniHackGame("Quest-Easy"), 9, moves) == first
    starts = {MiniHackGame("Room-5x5").reset(seed) for seed in range(4)}
    assert len(starts) > 1


def test_minihack_unknown_action_and_env_limit() -> None:
    game = MiniHackGame("Room-5x5", max_episode_steps=2)
    game.reset(3)
    with pytest.raises(UnknownAction):
        game.step("eat")  # not in a navigation task's action set
    game.step("northwest")
    result = game.step("northwest")  # into the corner, away from the stairs
    assert result.done and game.ended_reason == "max steps of the env"
    assert game.progression() == 0.0


BOXOBAN_LEVELS = """\
; 0
##########
#@ $  .  #
#        #
#  $  .  #
##########

; 1
##########
#  $  .  #
#@       #
#        #
##########

"""


def test_minihack_boxoban_with_levels_is_seeded(tmp_path, monkeypatch) -> None:
    # a two-level stand-in for the Boxoban download, to check the adapter's side of it
    from minihack.envs import boxohack

    for level_dir in (tmp_path / "hard", tmp_path / "medium" / "train"):
        level_dir.mkdir(parents=True)
        (level_dir / "000.txt").write_text(BOXOBAN_LEVELS)
    monkeypatch.setattr(boxohack, "LEVELS_PATH", str(tmp_path))
    game = MiniHackGame("Boxoban-Hard")
    assert game.action_names() == ["north", "south", "east", "west"]
    starts = [game.reset(seed) for seed in (0, 1, 2, 3, 0)]
    assert starts[0] == starts[-1] and len(set(starts)) > 1
    check_frame(game.frame(), 24, 80)
    game.step("east")


def test_a_crafter_seed_decides_the_world_whatever_the_memory_layout():
    """Crafter's chunk balancer picks creatures from sets ordered by memory address; the adapter
    orders them by creation, so the same seed and actions give the same world in any process
    (without that, both seeds here differ between the two heaps)."""
    import random

    from automem.games.crafter import CrafterGame

    rng = random.Random(3)
    actions = [rng.choice(["move_left", "move_right", "move_up", "move_down", "noop", "do"]) for _ in range(300)]

    def play(padding: int, seed: int) -> list[str]:
        heap = [object() for _ in range(padding)]  # other addresses for the objects created next
        game = CrafterGame()
        game.reset(seed)
        seen = []
        for action in actions:
            result = game.step(action)
            seen.append(result.observation)
            heap.extend(object() for _ in range(padding % 7))
            if result.done:
                break
        return seen

    for seed in (47, 1):
        assert play(0, seed) == play(3001, seed), f"seed {seed}"
