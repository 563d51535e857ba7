"""The transcript layout: each step extends the conversation the last one left, pinned files are
shown again only when they change, and the conversation starts again (all pinned files, the recent
steps) once it would pass its token budget. A scripted engine answers, so the prompts are exact;
the last test plays the bundled model and reads its cache figures."""

from __future__ import annotations

import json

import pytest

from automem.agent.prompt import (
    PHASES_HEADER,
    PINNED_CHANGED_HEADER,
    PINNED_HEADER,
    UNCHANGED_ALL,
    UNCHANGED_REST,
    observation_changes,
)
from automem.engines.base import Completion, EngineError, Message
from automem.games import make_game
from automem.memory.structure import Structure, load_builtin
from automem.runs import RunConfig, execute_run
from automem.runs.episode import EpisodeRunner
from automem.runs.memory_metrics import pinned_chars
from automem.store import Store


class ScriptedEngine:
    """LOG: writes the pinned progress file on even steps, else DONE; PLAN: ACT noop. Reports
    4 characters per prompt token, as a real engine reports its count."""

    name = "scripted"
    model = "scripted"
    supports_grammar = True

    def __init__(self) -> None:
        self.prompts: list[list[Message]] = []
        self.step = -1

    def complete(self, messages, *, grammar=None, max_tokens=64, temperature=0.7, seed=None) -> Completion:
        self.prompts.append([dict(m) for m in messages])
        first_of_step = "Current observation:" in messages[-1]["content"]
        self.step += first_of_step
        if grammar and "done ::=" in grammar:
            write = first_of_step and self.step % 2 == 1  # steps 1, 3, ...
            text = f"upsert progress.md goal: reach step {self.step + 1}" if write else "DONE"
        else:
            text = "ACT noop"
        tokens = sum(len(m["content"]) for m in messages) // 4
        return Completion(text=text, input_tokens=tokens, cached_tokens=0, output_tokens=4, latency_s=0.0)

    def close(self) -> None:
        pass


def _structure(layout: str, growth: int = 100_000, observation: str = "changes", past_turns: str = "drop") -> Structure:
    data = json.loads(load_builtin("crafter-v0").model_dump_json())
    data["context"].update(layout=layout, transcript_growth=growth, observation=observation, past_turns=past_turns)
    data["helpers"] = []
    return Structure.model_validate(data)


def _play(tmp_path, structure: Structure, steps: int) -> tuple[ScriptedEngine, Store, int]:
    store = Store(tmp_path / "t.db")
    run = store.create_run(name="t", game="crafter", task=None, structure_id=store.save_structure(structure),
                           engine="scripted", memory_engine=None, config={})  # fmt: skip
    engine = ScriptedEngine()
    runner = EpisodeRunner.start(store=store, run_id=run, game=make_game("crafter"), structure=structure,
                                 engine=engine, seed=1, memory_dir=tmp_path / "mem", max_steps=steps)  # fmt: skip
    for _ in runner.steps():
        pass
    return engine, store, runner.episode_id


def _is_prefix(a: list[Message], b: list[Message]) -> bool:
    return len(a) <= len(b) and b[: len(a)] == a


#: what ends each step of crafter-v0 with its past turns dropped: the LOG phase's reminder (the
#: system message holds the full instructions)
_LOG = (load_builtin("crafter-v0").phases[0].reminder or "").strip()
assert _LOG


def _step_firsts(engine: ScriptedEngine) -> list[str]:
    """Each step's first user message as the step added it (with past_turns: drop the transcript
    holds the steps before it in the same message; one conversation, no rebuild)."""
    whole = [p[-1]["content"] for p in engine.prompts if "Current observation:" in p[-1]["content"]]
    return [whole[0]] + [now[len(before) - len(_LOG) :] for before, now in zip(whole, whole[1:], strict=False)]


def test_each_step_extends_the_steps_before_without_their_turns(tmp_path) -> None:
    engine, store, _ = _play(tmp_path, _structure("transcript"), steps=8)
    prompts = engine.prompts
    firsts = [i for i, p in enumerate(prompts) if "Current observation:" in p[-1]["content"]]
    assert len(firsts) == 8
    for a, b in zip(firsts, firsts[1:], strict=False):
        before, now = prompts[a], prompts[b]
        # the system message, then one user message: the steps so far, then this step's
        assert len(now) == 2 and now[0] == before[0]
        assert before[1]["content"].endswith("\n\n" + _LOG)
        assert now[1]["content"].startswith(before[1]["content"][: -len(_LOG)])
        # within a step each call extends the one before
        for x, y in zip(prompts[a:b], prompts[a + 1 : b], strict=False):
            assert _is_prefix(x, y)
    # no earlier answer is shown again; the outcome lines say what the steps did
    last = prompts[firsts[-1]][1]["content"][: -len(_LOG)]
    assert "DONE" not in last and "ACT noop" not in last and "upsert progress.md goal" not in last
    assert "step 1: noop; noted upsert progress.md" in last
    store.close()


def test_past_turns_keep_makes_every_call_extend_the_one_before(tmp_path) -> None:
    engine, store, _ = _play(tmp_path, _structure("transcript", past_turns="keep"), steps=8)
    prompts = engine.prompts
    assert len(prompts) > 16
    for before, after in zip(prompts, prompts[1:], strict=False):
        assert _is_prefix(before, after)  # nothing before the newest turn is rendered again
    assert sum(1 for p in prompts if p[-1]["content"].count("Current observation:")) == 8
    # the system message once, then one user message per turn: the whole episode is one conversation
    assert sum(1 for m in prompts[-1] if m["role"] == "system") == 1
    store.close()


def test_pinned_files_are_shown_again_only_when_they_changed(tmp_path) -> None:
    engine, store, _ = _play(tmp_path, _structure("transcript"), steps=5)
    firsts = _step_firsts(engine)
    assert firsts[0].startswith(PINNED_HEADER) and "== strategy.md ==" in firsts[0]
    # step 1 wrote progress.md: step 2 shows it (and only it) again; step 2 wrote nothing
    assert firsts[2].startswith(PINNED_CHANGED_HEADER + "== progress.md ==\ngoal: reach step")
    assert "strategy.md" not in firsts[2]
    assert PINNED_HEADER not in firsts[1] and PINNED_CHANGED_HEADER not in firsts[1]
    # a step's outcome line comes with the next step, once
    assert "Recent steps:\nstep 1: noop; noted upsert progress.md\n" in firsts[2]
    assert firsts[4].startswith(PINNED_CHANGED_HEADER + "== progress.md ==\ngoal: reach step 4")
    # the memory metric counts what the prompt carries: the latest version of each pinned file
    users = [m["content"] for m in engine.prompts[-1] if m["role"] == "user"]
    strategy = load_builtin("crafter-v0").files[0].seed.strip()
    expected = len(f"== strategy.md ==\n{strategy}\n== progress.md ==\ngoal: reach step 4")
    assert pinned_chars(*users) == expected
    store.close()


@pytest.mark.parametrize("past_turns", ["drop", "keep"])
def test_the_transcript_starts_again_past_its_budget(tmp_path, past_turns: str) -> None:
    structure = _structure("transcript", growth=150, past_turns=past_turns)
    engine, store, episode = _play(tmp_path, structure, steps=10)
    lengths = store.step_prompt_tokens(episode)
    firsts = [p for p in engine.prompts if "Current observation:" in p[-1]["content"]]
    assert len(lengths) == len(firsts) == 10
    restarts = [k for k in range(1, 10) if lengths[k] < lengths[k - 1]]
    assert len(restarts) >= 2, "growing 30-100 tokens a step, a 150-token budget is passed every few steps"
    for k in range(1, 10):
        opening = firsts[k]
        if k not in restarts:  # appended: the conversation holds the earlier steps
            assert len(opening) > 2 or opening[1]["content"].count("Current observation:") > 1
            continue
        assert len(opening) == 2 and opening[1]["content"].startswith(PINNED_HEADER)
        assert opening[1]["content"].count("Current observation:") == 1
        history = opening[1]["content"].split("Recent steps:\n")[1].split("\n\n")[0].splitlines()
        assert len(history) == min(4, k)  # history_steps of the crafter-v0 structure
    # the budget is kept: no step's opening prompt is much past its conversation's first
    for start, end in zip([0, *restarts], [*restarts, 10], strict=True):
        assert max(lengths[start:end]) - lengths[start] <= 150 + 64
    store.close()


def test_the_rebuild_layout_starts_every_step_after_the_system_message(tmp_path) -> None:
    engine, store, _ = _play(tmp_path, _structure("rebuild"), steps=4)
    firsts = [p for p in engine.prompts if "Current observation:" in p[-1]["content"]]
    assert [len(p) for p in firsts] == [2, 2, 2, 2]
    assert all(p[1]["content"].startswith(PINNED_HEADER) for p in firsts)
    store.close()


def _shown_observation(message: str) -> str:
    return message.split("Current observation:\n", 1)[1].split("\n\nLOG:")[0].split("\n\nNotes:\n")[0]


def test_an_appended_step_shows_the_parts_of_the_observation_that_changed(tmp_path) -> None:
    engine, store, episode = _play(tmp_path, _structure("transcript"), steps=12)
    firsts = _step_firsts(engine)
    game = make_game("crafter")
    kinds = set()
    for step in range(1, 12):
        before = game.observation_parts(store.step_observation(episode, step - 1))
        now = game.observation_parts(store.step_observation(episode, step))
        shown = _shown_observation(firsts[step])
        if shown == UNCHANGED_ALL:
            assert now == before
            kinds.add("none")
            continue
        if not shown.endswith(UNCHANGED_REST):
            assert shown == "\n\n".join(now)
            kinds.add("all")
            continue
        parts = shown[: -len(UNCHANGED_REST) - 2].split("\n\n")
        # the same information: each part is shown, or is the same part as in the step before
        assert len(now) == len(before)
        assert parts == [p for p, old in zip(now, before, strict=True) if p != old]
        kinds.add("some")
    game.close()
    assert "some" in kinds, "noop leaves the view alone but daylight moves: some parts change"
    store.close()


def test_an_observation_whose_parts_do_not_line_up_is_shown_whole() -> None:
    before = ["You see:\n- tree 2 steps to your north", "Your status:\n- food: 9/9"]
    assert observation_changes(before, ["You are sleeping.", *before]) == "\n\n".join(["You are sleeping.", *before])
    assert observation_changes(before, before) == UNCHANGED_ALL
    assert observation_changes(before, [before[0], "Your status:\n- food: 8/9"]) == (
        f"Your status:\n- food: 8/9\n\n{UNCHANGED_REST}"
    )


def test_observation_full_shows_the_whole_observation_every_step(tmp_path) -> None:
    engine, store, episode = _play(tmp_path, _structure("transcript", observation="full"), steps=4)
    firsts = _step_firsts(engine)
    for step, message in enumerate(firsts):
        assert _shown_observation(message) == store.step_observation(episode, step).strip()
    store.close()


def test_nle_observation_parts_keep_the_map_whole() -> None:
    game = make_game("minihack", "Room-5x5")
    try:
        parts = game.observation_parts(game.reset(1))
    finally:
        game.close()
    assert [p.split(":", 1)[0] for p in parts] == ["Message", "Status", "Inventory", "Map", "Cursor"]
    assert "@" in parts[3] and "\n\n" in parts[3]  # the map's own blank rows stay inside it


def test_a_phase_reminder_replaces_its_instructions_in_appended_steps(tmp_path) -> None:
    data = json.loads(_structure("transcript", past_turns="keep").model_dump_json())
    data["phases"][0]["reminder"] = "LOG: one command, or DONE."
    data["phases"][1]["reminder"] = None  # a phase without one, below
    engine, store, _ = _play(tmp_path, Structure.model_validate(data), steps=3)
    firsts = [p[-1]["content"] for p in engine.prompts if "Current observation:" in p[-1]["content"]]
    instructions = data["phases"][0]["instructions"].strip()
    assert firsts[0].endswith(instructions)  # the conversation's first step: the whole text
    assert all(f.endswith("LOG: one command, or DONE.") and instructions not in f for f in firsts[1:])
    assert all(PHASES_HEADER not in p[0]["content"] for p in engine.prompts)
    # a transcript that drops the turns would never show the instructions again: the system message
    # holds them, cached once, and every step says the reminder, the first one too
    engine, _, _ = _play(tmp_path / "drop", Structure.model_validate({**data, "context": {
        **data["context"], "past_turns": "drop"}}), steps=3)  # fmt: skip
    firsts = [p[-1]["content"] for p in engine.prompts if "Current observation:" in p[-1]["content"]]
    assert len(firsts) == 3 and all(f.endswith("LOG: one command, or DONE.") for f in firsts)
    assert all(instructions not in m["content"] for p in engine.prompts for m in p[1:])
    held = f"{PHASES_HEADER}\n{instructions}"
    assert all(p[0]["content"].endswith(held) for p in engine.prompts)
    # the PLAN phase has no reminder: its whole text every step, and not in the system message
    plan = data["phases"][1]["instructions"].strip()
    assert plan not in engine.prompts[0][0]["content"] and any(plan in m["content"] for m in engine.prompts[-1])
    # the rebuild layout starts every step afresh: the whole text every step
    engine, _, _ = _play(tmp_path / "rebuild", Structure.model_validate({**data, "context": {
        **data["context"], "layout": "rebuild"}}), steps=2)  # fmt: skip
    firsts = [p[-1]["content"] for p in engine.prompts if "Current observation:" in p[-1]["content"]]
    assert all(f.endswith(instructions) for f in firsts) and PHASES_HEADER not in engine.prompts[0][0]["content"]
    # crafter-v0's phases have reminders (its system message holds the full texts); the other
    # built-ins have none, so their steps carry the whole instructions
    assert all(p.reminder for p in load_builtin("crafter-v0").phases)
    assert all(p.reminder is None for name in ("minihack-v0", "nethack-v0") for p in load_builtin(name).phases)
    store.close()


def test_the_layout_is_left_out_of_a_structures_id_at_its_default() -> None:
    base = load_builtin("crafter-v0")
    assert not {"layout", "transcript_growth", "observation", "past_turns"} & base.content()["context"].keys()
    assert _structure("rebuild").id != _structure("transcript").id
    assert _structure("transcript", observation="full").id != _structure("transcript").id
    assert _structure("transcript", past_turns="keep").id != _structure("transcript").id


@pytest.mark.model
def test_the_bundled_model_reads_appended_steps_from_its_cache(store: Store, engine) -> None:
    structure = load_builtin("crafter-v0")
    config = RunConfig(game="crafter", task=None, seeds=[2], structure=structure, engine_spec="llamacpp", max_steps=5)
    run_id, (summary,) = execute_run(config, store, engine)
    (episode,) = store.episodes(run_id)
    calls = store.calls_of(episode["id"])
    later = [c for c in calls if c["step"] > 0]
    # after the first step each call's prompt is the last one plus a step's turns: served from cache
    assert sum(c["cached_tokens"] for c in later) / sum(c["input_tokens"] for c in later) > 0.85
    assert store.step_prompt_tokens(episode["id"]) == sorted(store.step_prompt_tokens(episode["id"]))
    assert summary.steps == 5


class _FailsOnce(ScriptedEngine):
    """Fails the first call of step 3 (as an overflowing context would), then answers again."""

    failed: list[Message] | None = None

    def complete(self, messages, **kwargs) -> Completion:
        if "Current observation:" in messages[-1]["content"] and self.step == 2 and self.failed is None:
            self.failed = [dict(m) for m in messages]
            raise EngineError("context overflow")
        return super().complete(messages, **kwargs)


@pytest.mark.parametrize("past_turns", ["drop", "keep"])
def test_a_step_whose_call_failed_is_not_kept_and_the_next_starts_afresh(tmp_path, past_turns: str) -> None:
    structure = _structure("transcript", past_turns=past_turns)
    store = Store(tmp_path / "t.db")
    run = store.create_run(name="t", game="crafter", task=None, structure_id=store.save_structure(structure),
                           engine="scripted", memory_engine=None, config={})  # fmt: skip
    engine = _FailsOnce()
    runner = EpisodeRunner.start(store=store, run_id=run, game=make_game("crafter"), structure=structure,
                                 engine=engine, seed=1, memory_dir=tmp_path / "mem", max_steps=6)  # fmt: skip
    for _ in runner.steps():
        pass
    store.close()
    assert engine.failed is not None
    # steps 0, 1, 2, 4, 5 (step 3's first call failed; its later turns carry the error instead)
    firsts = [p[-1]["content"] for p in engine.prompts if "Current observation:" in p[-1]["content"]]
    assert len(firsts) == 5
    appended = [f.count("Current observation:") > 1 or not f.startswith(PINNED_HEADER) for f in firsts]
    # step 4 starts afresh (all pinned files, one observation); steps 1, 2 and 5 were appended
    assert appended == [False, True, True, False, True]
