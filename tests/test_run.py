"""Real episodes: real games, the bundled model through llama.cpp, a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from automem.engines.llamacpp import LlamaCppEngine
from automem.memory.structure import load_builtin
from automem.runs import RunConfig, execute_run
from automem.store import Store


def _run(store: Store, engine, game: str, *, task=None, seeds=(1,), steps=3, structure=None, name=None):
    structure = structure or load_builtin(f"{game}-v0")
    config = RunConfig(
        game=game,
        task=task,
        seeds=list(seeds),
        structure=structure,
        engine_spec="llamacpp",
        max_steps=steps,
        run_name=name,
    )
    return execute_run(config, store, engine)


@pytest.mark.parametrize(
    ("game", "task", "steps"), [("crafter", None, 4), ("nethack", None, 2), ("minihack", "Room-5x5", 2)]
)
def test_every_step_call_and_operation_is_recorded(store: Store, engine, game, task, steps) -> None:
    run_id, (summary,) = _run(store, engine, game, task=task, steps=steps)
    assert summary.status == "finished" and summary.steps >= 1
    con = sqlite3.connect(store.path)
    rows = con.execute(
        "select step, action, action_source, invalid_outputs, llm_calls from steps order by step"
    ).fetchall()
    assert [r[0] for r in rows] == list(range(summary.steps))
    # grammar-constrained output: every step's action came from the model, nothing was invalid
    assert all(r[2] == "model" and r[3] == 0 for r in rows)
    calls = con.execute(
        "select step, phase, prompt, response, valid, input_tokens, cached_tokens, output_tokens from llm_calls_full"
    ).fetchall()
    assert len(calls) == sum(r[4] for r in rows)
    assert all(c[4] == 1 and c[5] > 0 and c[7] > 0 for c in calls)
    assert json.loads(calls[0][2])[0]["role"] == "system"
    # later calls reuse the KV cache of earlier ones (stable-to-volatile prompt layout)
    assert sum(c[6] for c in calls[1:]) > 0.5 * sum(c[5] for c in calls[1:])
    ops = con.execute(
        "select verb, path, ok, message, content_before, content_after, llm_call_id from memory_ops_full"
    ).fetchall()
    for verb, _path, ok, message, _before, after, call_id in ops:
        assert message and call_id is not None
        if ok and verb in {"append", "write", "upsert", "insert", "str_replace", "create"}:
            assert after is not None
    episode = con.execute("select status, steps, progression from episodes").fetchone()
    assert episode[0] == "finished" and episode[1] == summary.steps
    run = con.execute("select status from runs where id = ?", [run_id]).fetchone()
    assert run[0] == "finished"


def test_none_structure_is_one_act_call_per_step(store: Store, engine) -> None:
    _, (summary,) = _run(store, engine, "crafter", structure=load_builtin("none"), steps=3)
    assert summary.llm_calls == summary.steps and summary.memory_ops == 0


def test_unconstrained_output_gets_feedback_and_the_fallback(store: Store, bundled_model_path) -> None:
    free = LlamaCppEngine(bundled_model_path, n_ctx=8192, constrained=False)
    try:
        structure = load_builtin("crafter-v0")
        _, (summary,) = _run(store, free, "crafter", structure=structure, steps=2)
    finally:
        free.close()
    assert summary.status == "finished" and summary.steps == 2
    con = sqlite3.connect(store.path)
    assert con.execute("select count(*) from llm_calls where grammar_id is not null").fetchone()[0] == 0
    invalid = con.execute("select parsed from llm_calls where valid = 0").fetchall()
    sources = {r[0] for r in con.execute("select action_source from steps")}
    # a 135M model without a grammar rarely answers in the command language: its errors are fed back
    if invalid:
        prompts = [json.loads(r[0]) for r in con.execute("select prompt from llm_calls_full where turn > 0")]
        assert any(m["content"].startswith("invalid:") for p in prompts for m in p if m["role"] == "user")
    assert sources <= {"model", "fallback"}


def test_a_dead_engine_fails_the_episode_and_keeps_the_record(store: Store, bundled_model_path) -> None:
    tiny = LlamaCppEngine(bundled_model_path, n_ctx=256)  # every prompt overflows the context
    try:
        _, (summary,) = _run(store, tiny, "crafter", steps=3)
    finally:
        tiny.close()
    assert summary.status == "failed" and "engine failed" in (summary.error or "")
    con = sqlite3.connect(store.path)
    assert con.execute("select status, error from episodes").fetchone()[0] == "failed"
    assert con.execute("select status from runs").fetchone()[0] == "failed"


def test_run_scope_carries_memory_across_episodes(store: Store, engine) -> None:
    base = load_builtin("minihack-v0")
    carried = base.derive(author="test", context={"history_steps": 2, "scope": "run"})
    _, summaries = _run(store, engine, "minihack", task="Room-5x5", seeds=(1, 2), steps=1, structure=carried)
    dirs = {store.episode(s.episode_id)["memory_dir"] for s in summaries}
    assert len(dirs) == 1 and Path(dirs.pop()).name == "shared"


def test_run_names_are_unique(store: Store, engine) -> None:
    from automem.games import GameError

    _run(store, engine, "minihack", task="Room-5x5", steps=1, name="same", structure=load_builtin("none"))
    with pytest.raises(GameError, match="already exists"):
        _run(store, engine, "minihack", task="Room-5x5", steps=1, name="same", structure=load_builtin("none"))


def test_two_model_mode_memory_engine_does_log_and_lookups(store: Store, engine, bundled_model_path, tmp_path) -> None:
    # the same weights under another file name, so llm_calls.model tells the two engines apart
    specialist_path = tmp_path / "memory-specialist.gguf"
    specialist_path.symlink_to(bundled_model_path)
    specialist = LlamaCppEngine(specialist_path, n_ctx=8192)
    try:
        config = RunConfig(
            game="crafter",
            task=None,
            seeds=[3],
            structure=load_builtin("crafter-v0"),
            engine_spec="llamacpp",
            max_steps=3,
            memory_engine_spec="llamacpp:specialist",
        )
        run_id, (summary,) = execute_run(config, store, engine, memory_engine=specialist)
    finally:
        specialist.close()
    assert summary.status == "finished"
    con = sqlite3.connect(store.path)
    calls = con.execute("select phase, parsed, model from llm_calls order by id").fetchall()
    for _phase, parsed, model in calls:
        if parsed.startswith("ACT "):
            assert model == engine.model  # the base model commits every game action
        else:
            assert model == "memory-specialist.gguf"  # LOG writes, look-ups and DONE
    assert {c[0] for c in calls if c[2] == "memory-specialist.gguf"} >= {"LOG"}
    assert sum(1 for c in calls if c[1].startswith("ACT ")) == summary.steps
    assert con.execute("select memory_engine from runs where id = ?", [run_id]).fetchone()[0] == "llamacpp:specialist"


class BreaksOnThirdCall:
    """The real engine, until a call raises what no engine should: a bug, not an EngineError."""

    def __init__(self, engine) -> None:
        self.inner, self.calls = engine, 0
        self.name, self.model, self.supports_grammar = engine.name, engine.model, engine.supports_grammar

    def complete(self, messages, **kwargs):
        self.calls += 1
        if self.calls == 3:
            raise KeyError("choices")
        return self.inner.complete(messages, **kwargs)

    def close(self) -> None:
        pass


def test_an_unexpected_engine_exception_fails_only_that_episode(store: Store, engine) -> None:
    _, summaries = _run(store, BreaksOnThirdCall(engine), "crafter", seeds=(1, 2), steps=2)
    assert [s.status for s in summaries] == ["failed", "finished"]
    assert summaries[0].error == "KeyError: 'choices'"
    con = sqlite3.connect(store.path)
    rows = con.execute("select status, error, steps from episodes order by id").fetchall()
    assert rows[0][:2] == ("failed", "KeyError: 'choices'") and rows[1][0] == "finished"
    first_steps = "select count(*) from steps where episode_id = (select min(id) from episodes)"
    assert con.execute(first_steps).fetchone()[0] >= 1
