"""Replaying stored episodes: the memory folder at any step, navigation, and the replay engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automem.engines.base import EngineError
from automem.engines.replay import ReplayEngine, factory
from automem.games import make_game
from automem.memory.structure import structure_from_yaml
from automem.memory.syntax import parse_command
from automem.runs.episode import EpisodeOver, EpisodeRunner
from automem.runs.replay import EpisodeReplay, ReplayError, list_episodes

EPISODES = Path(__file__).parent / "data" / "episodes"


def _bundle(name: str) -> dict:
    return json.loads((EPISODES / f"{name}.json").read_text())


def _runner(store, tmp_path, structure, engine, seed=7, steps=12, game="crafter") -> EpisodeRunner:
    run_id = store.create_run(
        name=f"r{len(list_episodes(store))}", game=game, task="default", structure_id=store.save_structure(structure),
        engine=engine.name, memory_engine=None, config={},
    )  # fmt: skip
    return EpisodeRunner.start(
        store=store, run_id=run_id, game=make_game(game), structure=structure, engine=engine, seed=seed,
        memory_dir=tmp_path / f"mem{run_id}", max_steps=steps,
    )  # fmt: skip


def test_memory_at_each_step_follows_the_recorded_operations(recorded, store):
    episode_id = recorded(store, "crafter-seed7")
    replay = EpisodeReplay(store, episode_id)
    assert len(replay) == 12
    seed = json.loads(replay.episode["memory_seed"])
    assert replay.memory(-1) == replay.memory(0) == dict(sorted(seed.items()))
    # step 7 appended one line to actions.md (its insert was refused), step 10 upserted map.md twice
    assert replay.memory(6)["actions.md"] == seed["actions.md"]
    assert replay.memory(7)["actions.md"].startswith("2:1:3:2:5")
    assert replay.memory(9)["map.md"] == seed["map.md"]
    assert "water" in replay.memory(10)["map.md"]
    assert replay.memory(11) == replay.memory(10)
    assert replay.next_write(0) == 7 and replay.next_write(7) == 10 and replay.next_write(10) is None
    assert replay.previous_write(10) == 7 and replay.previous_write(7) is None
    step = replay.step(7)
    assert [(o.verb, o.ok) for o in step.ops] == [("insert", False), ("append", True), ("count", True)]
    assert [c.phase for c in step.calls] == ["LOG", "LOG", "PLAN", "PLAN"]
    assert step.frame.rows and step.action == "sleep"
    assert replay.prompt(step.calls[0].id)[0]["role"] == "system"


def test_bad_episode_and_step(recorded, store):
    with pytest.raises(ReplayError, match="no episode 99"):
        EpisodeReplay(store, 99)
    replay = EpisodeReplay(store, recorded(store, "nethack-seed7"))
    with pytest.raises(ReplayError, match="outside"):
        replay.step(len(replay))


def test_replay_engine_reproduces_the_episode(recorded, store, tmp_path):
    """Same game, seed, structure and the recorded outputs: the same actions and memory writes."""
    episode_id = recorded(store, "crafter-seed7")
    bundle = _bundle("crafter-seed7")
    structure = structure_from_yaml(bundle["structure_yaml"])
    runner = _runner(store, tmp_path, structure, ReplayEngine(store.path, episode_id))
    summary = runner.run()
    assert summary.status == "finished" and summary.steps == 12
    again = EpisodeReplay(store, summary.episode_id)
    original = EpisodeReplay(store, episode_id)
    assert [again.step(i).action for i in range(12)] == [original.step(i).action for i in range(12)]
    assert again.memory(11) == original.memory(11)
    assert [s.frame.rows for s in map(again.step, range(12))] == [s.frame.rows for s in map(original.step, range(12))]


def test_replay_engine_errors(recorded, store, tmp_path):
    with pytest.raises(EngineError, match="replay needs an episode id"):
        factory("abc", db=tmp_path / "x.db")
    with pytest.raises(EngineError, match="recorded no model calls"):
        factory("5", db=store.path)
    engine = ReplayEngine(store.path, recorded(store, "nethack-seed7"))
    for _ in range(len(engine._rows)):
        engine.complete([])
    with pytest.raises(EngineError, match="only"):
        engine.complete([])


def test_stepping_turn_by_turn_take_over_and_human_operations(recorded, store, tmp_path):
    episode_id = recorded(store, "crafter-seed7")
    structure = structure_from_yaml(_bundle("crafter-seed7")["structure_yaml"])
    runner = _runner(store, tmp_path, structure, ReplayEngine(store.path, episode_id))
    first = runner.next_turn()  # step 0's LOG turn, no action yet
    assert first.phase == "LOG" and runner.mid_step and runner.index == 0
    # a person writes a note between two model turns, then plays the step's action themselves
    result = runner.human_operation(parse_command("APPEND strategy.md :: drink at the lake"))
    assert result.ok, result.message
    step = runner.take_over("Move_Left")  # matched forgivingly, like the model's actions
    assert step.decision.action == "move_left" and step.decision.source == "human"
    assert not runner.mid_step and runner.index == 1
    edited = runner.edit_file("progress.md", "found: a lake east\n")
    assert edited.ok
    with pytest.raises(ValueError, match="unknown action"):
        runner.take_over("fly")
    refused = runner.human_operation(parse_command("WRITE ../escape.md :: x"))
    assert not refused.ok and not (tmp_path / "escape.md").exists()
    runner.next_turn()  # step 1: the model's LOG turn runs, then the episode is stopped mid-step
    summary = runner.close()
    assert summary.status == "interrupted"
    with pytest.raises(EpisodeOver):
        runner.next_turn()
    rows = store.db.execute(
        "SELECT step, phase, source, verb, path, ok FROM memory_ops WHERE episode_id = ? ORDER BY id",
        [summary.episode_id],
    ).fetchall()
    assert rows[0] == (0, "HUMAN", "human", "append", "strategy.md", 1)
    assert (1, "HUMAN", "human", "write", "progress.md", 1) in rows
    assert any(r[:3] == (1, "HUMAN", "human") and r[5] == 0 for r in rows)  # the refused one is recorded too
    steps = store.db.execute("SELECT step, action, action_source FROM steps WHERE episode_id = ?", [summary.episode_id])
    assert steps.fetchall() == [(0, "move_left", "human")]
    calls = store.db.execute("SELECT step, phase FROM llm_calls WHERE episode_id = ? ORDER BY id", [summary.episode_id])
    assert calls.fetchall() == [(0, "LOG"), (1, "LOG")]  # the unfinished step's turn is kept
    # the replay of this episode rebuilds the folder with the person's edits
    replay = EpisodeReplay(store, summary.episode_id)
    assert "drink at the lake" in replay.memory(0)["strategy.md"]
    assert replay.step(0).ops[0].source == "human"
    assert (tmp_path / f"mem{1 + episode_id}" / "progress.md").read_text() == "found: a lake east\n"
    assert store.episode(summary.episode_id)["status"] == "interrupted"
