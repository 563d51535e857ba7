"""The paper's memory metrics on real episodes: two recorded with the bundled model (Crafter seeds 7
and 1004) and one a person plays back and forth in MiniHack."""

from __future__ import annotations

from pathlib import Path

import pytest

from automem.runs.memory_metrics import episode_metrics, metrics_row, pinned_chars, run_metrics


def test_metrics_of_a_recorded_episode(store, recorded):
    episode = recorded(store, "crafter-seed1004")
    m = episode_metrics(store, episode)
    assert (m.steps, m.unrewarded_steps, m.stuck, m.oscillating) == (30, 29, 11, 0)
    # 9 look-ups, 6 found nothing: tail map.md (empty), 2 searches of survival.md, 3 of actions.md
    assert (m.lookups, m.empty_lookups) == (9, 6)
    assert (m.log_turns, m.done_turns) == (36, 25)
    assert m.memory_chars == 9227 and m.memory_tokens == pytest.approx(2823.6, abs=0.5)
    row = metrics_row(m)
    assert row["log_done_rate"] == round(25 / 36, 4) and row["empty_lookup_rate"] == round(6 / 9, 4)
    assert row["unproductive_action_rate"] == round(11 / 29, 4)
    seven = recorded(store, "crafter-seed7")
    both = run_metrics(store, [episode, seven])
    assert both.steps == 42 and both.done_turns == 25 + 10 and both.stuck == 11 + 3


def test_oscillation_is_counted_on_a_person_played_episode(store, tmp_path: Path):
    from automem.engines.base import PersonOnly
    from automem.games import make_game
    from automem.memory.structure import load_builtin
    from automem.runs.episode import EpisodeRunner

    structure = load_builtin("minihack-v0")
    run = store.create_run(
        name="person", game="minihack", task="Room-5x5", structure_id=store.save_structure(structure),
        engine="person", memory_engine=None, config={},
    )  # fmt: skip
    runner = EpisodeRunner.start(
        store=store, run_id=run, game=make_game("minihack", "Room-5x5"), structure=structure, engine=PersonOnly(),
        seed=3, memory_dir=tmp_path / "mem", max_steps=20,
    )  # fmt: skip
    for move in ["east", "west"] * 4 + ["east", "east"]:
        runner.take_over(move)
    m = episode_metrics(store, runner.episode_id)
    # back and forth: each move after the first returns to the view of two steps before
    assert m.steps == 10 and m.oscillating == 7 and m.lookups == 0 and m.log_turns == 0


def test_pinned_block_is_measured_in_the_first_user_message():
    message = "Memory (pinned files):\n== map.md ==\ntree west\n\nRecent steps:\n0: noop\n\nCurrent observation:\nx"
    assert pinned_chars(message) == len("== map.md ==\ntree west")
    assert pinned_chars("Current observation:\nx") == 0
    assert pinned_chars("Memory (pinned files):\n== a ==\n(empty)\n\nCurrent observation:\nx") == len(
        "== a ==\n(empty)"
    )
