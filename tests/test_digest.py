"""The trajectory digest loop 1's critic reads, and the tools a critic with tool calls can use."""

from __future__ import annotations

import json
import random
import re

import pytest

from automem.engines.base import PersonOnly
from automem.games import make_game
from automem.memory.structure import load_builtin
from automem.memory.syntax import parse_command
from automem.optimize.digest import (
    TOOLS,
    Digest,
    DigestError,
    MemoryFileAtArgs,
    StepRangeArgs,
    build_digest,
    call_tool,
    memory_file_at,
    step_range,
)
from automem.records import CallRecord, OpRecord, StepRecord
from automem.runs.episode import EpisodeRunner
from automem.runs.replay import EpisodeReplay


def _run(store, game: str, name: str) -> int:
    structure = load_builtin(f"{game}-v0")
    return store.create_run(
        name=name, game=game, task="default", structure_id=store.save_structure(structure), engine="none",
        memory_engine=None, config={},
    )  # fmt: skip


def _runner(store, tmp_path, run_id: int, game: str, seed: int, max_steps: int) -> EpisodeRunner:
    return EpisodeRunner.start(
        store=store, run_id=run_id, game=make_game(game), structure=load_builtin(f"{game}-v0"), engine=PersonOnly(),
        seed=seed, memory_dir=tmp_path / f"mem{run_id}-{seed}-{max_steps}", max_steps=max_steps,
    )  # fmt: skip


def _op(runner: EpisodeRunner, command: str) -> None:
    runner.human_operation(parse_command(command))  # type: ignore[arg-type]


# Crafter seed 7: the tree is 2 north, 3 east; the 6th action chops wood, the 10th gets a sapling
CRAFTER_MOVES = ["move_right"] * 3 + ["move_up"] * 2 + ["do"] * 5 + ["noop"] * 2


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """A person's Crafter episode with a note written twice, an unchanged upsert, a read, a refused
    insert and two achievements; then an interrupted episode that read survival.md. Built once
    (a Crafter world takes a second to generate); the tests only read it."""
    from automem.store import Store

    root = tmp_path_factory.mktemp("people")
    store = Store(root / "automem.db")
    run_id = _run(store, "crafter", "people")
    runner = _runner(store, root, run_id, "crafter", seed=7, max_steps=12)
    runner.begin()
    for index, action in enumerate(CRAFTER_MOVES):
        if index == 0:
            _op(runner, "append progress.md: the tree is north-east")
        if index == 1:
            _op(runner, "append progress.md: the tree is north-east")  # already there: redundant
            _op(runner, "upsert map.md tree: north-east of start")
        if index == 2:
            _op(runner, "upsert map.md tree: north-east of start")  # content unchanged: redundant
        if index == 3:
            _op(runner, "view map.md")
        if index == 4:
            _op(runner, "insert actions.md 5: chopping")  # actions.md is empty: refused
        runner.take_over(action)
    assert runner.ended
    # the second episode as the store keeps an interrupted one: 3 steps, a read, no end
    structure = load_builtin("crafter-v0")
    second = store.start_episode(
        run_id=run_id, game="crafter", task="default", seed=8, structure_id=structure.id, engine="none",
        model="none", memory_dir="m", memory_seed=structure.seed_files(),
    )  # fmt: skip
    view = OpRecord("HUMAN", 0, "human", "view", "survival.md", {}, True, "survival.md is empty", None, None)
    for step in range(3):
        store.record_step(second, StepRecord(step, "obs", "", {}, "noop", "human", 0.0, False, 0.0, [], 0, 0.0, 0.0,
                                             ops=[view] if step == 1 else []))  # fmt: skip
    store.finish_episode(second, status="interrupted", ended_reason="interrupted")
    yield store, run_id, runner.episode_id, second
    store.close()


def test_recorded_crafter_episode(recorded, store):
    episode_id = recorded(store, "crafter-seed7")
    digest = build_digest(store, store.episode(episode_id)["run_id"])
    assert isinstance(digest, Digest) and digest.game == "crafter" and digest.structure_id == "a74f294ccd05"
    (ep,) = digest.episodes
    assert (ep.episode_id, ep.seed, ep.status, ep.steps) == (episode_id, 7, "finished", 12)
    assert ep.ended_reason == "max steps"
    assert ep.achievements == [] and ep.progression == 0.0
    assert (ep.invalid_outputs, ep.refused_ops, ep.memory_ops, ep.fallback_actions) == (0, 1, 6, 0)
    observations = [s["observation"] for s in store.steps(episode_id)]
    unchanged = sum(a == b for a, b in zip(observations, observations[1:], strict=False))
    assert ep.unchanged_observations == unchanged == 3
    assert (ep.longest_zero_reward_streak, ep.zero_reward_streak_start) == (12, 0)
    assert ep.log_budget_exhausted == 2  # steps 7 and 10 used both LOG turns without DONE
    calls = store.db.execute("SELECT SUM(input_tokens + output_tokens) FROM llm_calls").fetchone()[0]
    assert ep.tokens_per_step == pytest.approx(calls / 12, abs=0.1)
    assert not ep.died and ep.death_cause is None

    files = digest.files
    assert list(files) == ["strategy.md", "progress.md", "map.md", "survival.md", "actions.md"]
    actions, map_md = files["actions.md"], files["map.md"]
    final = EpisodeReplay(store, episode_id).memory(11)
    assert (actions.writes, actions.refused_writes, actions.reads, actions.redundant_writes) == (1, 1, 1, 0)
    assert (actions.final_lines, actions.final_chars) == (1, len(final["actions.md"]))
    assert actions.growth_chars_per_step == pytest.approx(len(final["actions.md"]) / 12, abs=1e-3)
    assert (map_md.writes, map_md.reads, map_md.redundant_writes, map_md.appends) == (2, 1, 0, 0)
    assert files["survival.md"].never_read and files["survival.md"].writes == 0
    strategy = files["strategy.md"]
    assert strategy.pinned and not strategy.never_read and strategy.reads == 0
    assert not map_md.never_read and not map_md.pinned


def test_context_share_matches_the_prompts(recorded, store):
    """Checked against the exact prompts: a pinned file's chars in every call, a read's result once."""
    episode_id = recorded(store, "crafter-seed7")
    digest = build_digest(store, store.episode(episode_id)["run_id"])
    replay = EpisodeReplay(store, episode_id)
    calls = store.db.execute("SELECT id, step FROM llm_calls WHERE episode_id = ?", [episode_id]).fetchall()
    total = sum(len(m["content"]) for call_id, _ in calls for m in store.call_prompt(call_id))
    seed = json.loads(replay.episode["memory_seed"])
    strategy = sum(len(replay.memory(step - 1)["strategy.md"] if step else seed["strategy.md"]) for _, step in calls)
    assert digest.files["strategy.md"].context_share == pytest.approx(strategy / total, abs=1e-4)
    # the pinned file really is in the prompts, so the share is what the critic should see
    assert seed["strategy.md"] in store.call_prompt(calls[0][0])[1]["content"]
    search = store.db.execute("SELECT message FROM memory_ops WHERE verb = 'search'").fetchone()[0]
    assert digest.files["map.md"].context_share == pytest.approx(len(search) / total, abs=1e-4)
    assert digest.files["survival.md"].context_share == 0.0


def test_recorded_windows_show_turns_and_refused_ops(recorded, store):
    episode_id = recorded(store, "crafter-seed7")
    digest = build_digest(store, store.episode(episode_id)["run_id"])
    windows = digest.episodes[0].windows
    assert [(w.kind, w.start, w.end) for w in windows] == [("failure", 4, 10), ("failure", 0, 3)]
    refused = windows[0]
    assert refused.reason.startswith("refused insert actions.md at step 7: refused: line must be 1-1")
    assert refused.focus == 7 and refused.episode_id == episode_id
    at = refused.lines.index("step 7: sleep (model) reward 0")
    assert refused.lines[at + 1 : at + 5] == [
        "  LOG1 insert actions.md 201: 1:1:3:2:5:3:5:1:2:1:0:1:5:1:2:1: -> "
        "refused: line must be 1-1 for actions.md (0 lines)",
        "  LOG2 append actions.md: 2:1:3:2:5:3:5:1:2:1:0:1:1:5:1:2:1:1:2:5:1: -> "
        "ok: appended 1 line to actions.md (1 line)",
        "  PLAN1 count actions.md -> actions.md: 1 line, 42 chars (cap 20 lines, 1200 chars)",
        "  PLAN2 ACT sleep",
    ]
    assert "  LOG1 upsert map.md water: east of start -> ok: added water at line 1 of map.md (1 line)" in refused.lines
    assert windows[1].reason == "start of the longest streak without reward: 12 steps from step 0"
    assert windows[1].lines[:3] == ["step 0: sleep (model) reward 0", "  LOG1 DONE", "  PLAN1 ACT sleep"]


def test_text_fits_the_budget_and_says_the_numbers(recorded, store):
    episode_id = recorded(store, "crafter-seed7")
    digest = build_digest(store, store.episode(episode_id)["run_id"])
    full = digest.to_text()
    assert len(full) <= 12000
    assert full.startswith("Digest of run ")
    for needed in ("1 episode, 12 steps", "Progression 0.00 +/- 0.00", "1 refused memory ops",
                   "3 unchanged observations", "longest streak without reward 12 steps", "never read",
                   "ep 1 seed 7 default: finished (max steps), 12 steps", "[failure] ep 1 steps 4-10",
                   "refused: line must be 1-1 for actions.md",
                   # the memory metrics: 10 of 14 LOG turns answered DONE, 3 of 11 unrewarded steps stuck
                   "71% of LOG turns answered DONE", "0% of 2 look-ups found nothing",
                   "27% of unrewarded actions unproductive (3 stuck, 0 oscillating)"):  # fmt: skip
        assert needed in full, needed
    table = full.split("Memory files")[1].split("Episodes:")[0]
    assert "actions.md  no          1       1     1         0     1    43" in table
    assert "survival.md no          0       0     0         0     0     0        0.00  0.00%  never read" in table
    short = digest.to_text(budget_chars=2300)
    assert len(short) <= 2300
    assert "Progression 0.00" in short and "ep 1 seed 7" in short and re.search(r"more windows? omitted", short)
    # the window that did not fit whole keeps the steps around its refused insert
    assert "(cut from 4-10)" in short and "LOG1 insert actions.md 201" in short
    for budget in (0, 50, 300, 700, 1000, 5000):
        assert len(digest.to_text(budget_chars=budget)) <= budget


def test_people_episode_counts_redundant_and_never_read(people):
    store, run_id, first, second = people
    digest = build_digest(store, run_id)
    a, b = digest.episodes
    assert (a.episode_id, b.episode_id) == (first, second)
    assert a.achievements == [(5, "collect_wood"), (9, "collect_sapling")]
    assert [step for step, _ in a.progression_timeline] == [5, 9]
    assert a.progression == pytest.approx(200 / 22)
    assert (a.status, a.ended_reason, a.steps, a.refused_ops, a.memory_ops) == ("finished", "max steps", 12, 1, 6)
    assert a.tokens_per_step == 0.0 and a.invalid_outputs == 0 and a.fallback_actions == 0
    # the two moves up: the second bumps into the tree and the sapling steps repeat the view
    assert a.longest_zero_reward_streak == 5 and a.zero_reward_streak_start == 0

    progress, map_md, actions = a.files["progress.md"], a.files["map.md"], a.files["actions.md"]
    assert (progress.writes, progress.appends, progress.redundant_writes, progress.reads) == (2, 2, 1, 0)
    assert progress.pinned and not progress.never_read
    assert (map_md.writes, map_md.redundant_writes, map_md.reads, map_md.never_read) == (2, 1, 1, False)
    assert (actions.writes, actions.refused_writes, actions.never_read) == (0, 1, True)
    assert a.files["survival.md"].never_read
    memory = EpisodeReplay(store, first).memory(11)
    seed = json.loads(store.episode(first)["memory_seed"])
    assert progress.final_chars == len(memory["progress.md"]) and progress.final_lines == 3
    growth = (len(memory["progress.md"]) - len(seed["progress.md"])) / 12
    assert progress.growth_chars_per_step == pytest.approx(growth, abs=1e-3)

    # the run: the interrupted episode is unfinished, counts in the files but not in the mean
    assert b.status == "interrupted" and b.unfinished and b.steps == 3
    assert digest.files["survival.md"].reads == 1 and not digest.files["survival.md"].never_read
    assert digest.files["progress.md"].writes == 2 and digest.files["map.md"].redundant_writes == 1
    assert digest.files["progress.md"].final_chars == round((progress.final_chars + len(seed["progress.md"])) / 2)
    assert digest.mean_progression == pytest.approx(200 / 22, abs=1e-3) and digest.stderr == 0.0

    best = [w for w in a.windows if w.kind == "best"]
    reasons = " | ".join(w.reason for w in best)
    assert "unlocked collect_wood at step 5" in reasons and "unlocked collect_sapling at step 9" in reasons
    lines = [line for w in a.windows for line in w.lines]
    assert "step 5: do (human) reward 1 progression 4.55 unlocked collect_wood" in lines
    failure = next(w for w in a.windows if w.kind == "failure" and "refused insert" in w.reason)
    assert "  HUMAN insert actions.md -> refused: line must be 1-1 for actions.md (0 lines)" in failure.lines

    text = digest.to_text()
    assert "(1 unfinished: 1 interrupted)" in text and "UNFINISHED interrupted" in text
    assert "collect_wood@5, collect_sapling@9" in text
    assert "over 1 finished episode" in text


def test_nethack_death_window(store, tmp_path):
    """Random moves on NetHack seed 37 die after about 130 steps: the end is the window to look at."""
    run_id = _run(store, "nethack", "death")
    runner = _runner(store, tmp_path, run_id, "nethack", seed=37, max_steps=1500)
    rng = random.Random(2)
    moves = ["north", "south", "east", "west", "northeast", "northwest", "southeast", "southwest", "fight"]
    runner.begin()
    while not runner.ended:
        if runner.index % 10 == 0:
            _op(runner, f"append progress.md: turn {runner.index}")
        runner.take_over(rng.choice(moves))
    assert runner.summary.ended_reason == "died"
    digest = build_digest(store, run_id)
    (ep,) = digest.episodes
    last = ep.steps - 1
    assert ep.died and ep.ended_reason == "died" and ep.steps < 1500
    assert ep.death_cause is not None and ep.death_cause.startswith("died") and "HP:" in ep.death_cause
    end = ep.windows[0]
    assert (end.kind, end.priority, end.start, end.end, end.focus) == ("failure", 0, last - 6, last, last)
    assert end.reason.startswith("episode ended (death): died")
    assert end.lines[0].startswith(f"step {last - 6}: ")
    assert any(line.startswith(f"step {last}: ") for line in end.lines)
    # progress.md holds 10 lines (1 seeded): the appends after the 9th are refused
    progress = ep.files["progress.md"]
    attempts = last // 10 + 1
    assert (progress.writes, progress.refused_writes, ep.refused_ops) == (9, attempts - 9, attempts - 9)
    text = digest.to_text(budget_chars=3000)
    assert len(text) <= 3000 and "1 death" in text and "died: died" in text
    assert f"[failure] ep {ep.episode_id} steps {last - 6}-{last}: episode ended (death)" in text


def test_invalid_outputs_and_fallbacks_from_model_turns(store):
    """A stored episode with invalid model output, a refused write and fallback actions."""
    structure = load_builtin("crafter-v0")
    run_id = _run(store, "crafter", "model")
    eid = store.start_episode(
        run_id=run_id, game="crafter", task="default", seed=1, structure_id=structure.id, engine="x", model="m",
        memory_dir="m", memory_seed=structure.seed_files(),
    )  # fmt: skip
    prompt = [{"role": "system", "content": "s" * 100}, {"role": "user", "content": "u" * 300}]

    def call(phase: str, turn: int, parsed: str, valid: bool = True) -> CallRecord:
        return CallRecord(phase, turn, "x", "m", prompt, None, parsed, parsed, valid, 50, 0, 5, 0.1, "stop")

    for step in range(10):
        calls = [call("LOG", 0, "DONE"), call("PLAN", 0, "ACT noop")]
        ops: list[OpRecord] = []
        invalid, source = 0, "model"
        if step == 6:
            calls = [
                call("LOG", 0, "unknown command 'hmm'; expected DONE, ACT <action> or a memory verb", valid=False),
                call("LOG", 1, "write notes.md: x"),
                call("PLAN", 0, "unknown command 'go'; expected DONE, ACT <action> or a memory verb", valid=False),
                call("PLAN", 1, "unknown command 'go'; expected DONE, ACT <action> or a memory verb", valid=False),
            ]
            refusal = "refused: new files are not allowed; the files are: strategy.md"
            ops = [OpRecord("LOG", 1, "model", "write", "notes.md", {"text": "x"}, False, refusal, None, None, 1)]
            invalid, source = 3, "fallback"
        if step == 3:  # a search over every file counts as a read of each file it listed
            hits = "2 matches for 'wood':\nstrategy.md:1: 1. collect wood\nprogress.md:1: goal: collect wood"
            ops = [OpRecord("PLAN", 0, "model", "search", "*", {"query": "wood"}, True, hits, None, None, 1)]
        store.record_step(eid, StepRecord(step, f"obs {step}", "", {}, "noop", source, 0.0, False, 0.0, [], invalid,
                                          0.1, 0.0, calls=calls, ops=ops))  # fmt: skip
    store.finish_episode(eid, status="finished", ended_reason="max steps")
    digest = build_digest(store, run_id, window=2)
    (ep,) = digest.episodes
    assert (ep.invalid_outputs, ep.fallback_actions, ep.refused_ops, ep.unchanged_observations) == (3, 1, 1, 0)
    assert ep.tokens_per_step == pytest.approx((2 * 55 * 9 + 4 * 55) / 10)
    assert [digest.files[p].reads for p in ("strategy.md", "progress.md", "map.md")] == [1, 1, 0]
    assert "notes.md" not in digest.files  # refused writes to a file that never existed stay out of the table
    (window,) = [w for w in ep.windows if w.start <= 6 <= w.end]
    assert (window.start, window.end, window.kind) == (4, 8, "failure")
    assert window.reason.startswith("3 invalid outputs at step 6 (1 steps had some); refused write notes.md")
    at = window.lines.index("step 6: noop (fallback) reward 0 [3 invalid outputs]")
    assert window.lines[at + 1 : at + 5] == [
        "  LOG1 invalid: unknown command 'hmm'; expected DONE, ACT <action> or a memory verb",
        "  LOG2 write notes.md: x -> refused: new files are not allowed; the files are: strategy.md",
        "  PLAN1 invalid: unknown command 'go'; expected DONE, ACT <action> or a memory verb",
        "  PLAN2 invalid: unknown command 'go'; expected DONE, ACT <action> or a memory verb",
    ]
    # the pinned files fill part of each 400-char prompt
    seed = structure.seed_files()
    read = len("strategy.md:1: 1. collect wood") + 1
    share = (len(seed["strategy.md"]) * 22 + read) / (400 * 22)  # 22 calls: 2 a step, 4 at step 6
    assert digest.files["strategy.md"].context_share == pytest.approx(share, abs=1e-4)
    assert "3 invalid outputs, 1 refused memory ops, 1 fallback actions" in digest.to_text()


def test_step_range_and_memory_file_at(people):
    store, _, first, _ = people
    text = step_range(store, first, 4, 5)
    lines = text.split("\n")
    assert lines[0] == "step 4: move_up (human) reward 0"
    assert lines[1].startswith("  observation: You see: | - tree 1 step to your north")
    assert "  HUMAN insert actions.md -> refused: line must be 1-1 for actions.md (0 lines)" in lines
    assert "step 5: do (human) reward 1 progression 4.55" in text and "step 6:" not in text
    cut = step_range(store, first, 0, 11, max_chars=600)
    assert len(cut) <= 600 and "ask for a smaller range" in cut and cut.startswith("step 0:")

    assert memory_file_at(store, first, "progress.md", 0).endswith("goal: collect wood\nthe tree is north-east\n")
    head = memory_file_at(store, first, "map.md", 2).split("\n")[0]
    assert head == f"map.md after step 2 of episode {first} (1 line, 26 chars):"
    assert memory_file_at(store, first, "survival.md", 0).endswith("(empty)")
    assert memory_file_at(store, first, "notes.md", 3).startswith("error: no file 'notes.md' after step 3")


def test_call_tool_answers_errors_as_text(people):
    store, _, first, _ = people
    assert [t["function"]["name"] for t in TOOLS] == ["step_range", "memory_file_at"]
    for tool in TOOLS:
        params = tool["function"]["parameters"]
        assert tool["type"] == "function" and params["type"] == "object"
        assert set(params["required"]) <= set(params["properties"])
    # the offered parameters are the argument models' schemas: what is offered is what is accepted
    for tool, model in zip(TOOLS, (StepRangeArgs, MemoryFileAtArgs), strict=True):
        assert list(tool["function"]["parameters"]["properties"]) == list(model.model_fields)
        assert tool["function"]["parameters"]["additionalProperties"] is False
    ok = call_tool(store, "step_range", {"episode_id": first, "start": 5, "end": 5})
    assert ok.startswith("step 5: do (human)")
    assert call_tool(store, "step_range", json.dumps({"episode_id": first, "start": "5", "end": 5})) == ok
    # a size outside the offered bounds is brought inside them (200), not refused
    small = call_tool(store, "step_range", {"episode_id": first, "start": 0, "end": 11, "max_chars": 10})
    assert small == step_range(store, first, 0, 11, max_chars=200)
    assert call_tool(store, "memory_file_at", {"episode_id": first, "path": "map.md", "step": 11}).startswith(
        "map.md after step 11"
    )
    errors = {
        ("delete_everything", "{}"): "error: unknown tool 'delete_everything'; tools: step_range, memory_file_at",
        ("step_range", json.dumps({"episode_id": first, "start": 1})): "error: bad arguments for step_range (missing",
        ("step_range", json.dumps({"episode_id": first, "start": 1, "end": 2, "x": 1})): "error: bad arguments",
        ("step_range", json.dumps({"episode_id": first, "start": "one", "end": 2})): "error: start must be an integer",
        ("step_range", json.dumps({"episode_id": True, "start": 1, "end": 2})): "error: episode_id must be an integer",
        ("step_range", json.dumps({"episode_id": 999, "start": 1, "end": 2})): "error: no episode 999",
        ("step_range", json.dumps({"episode_id": first, "start": 3, "end": 12})): (
            f"error: step 12 is out of range; episode {first} has steps 0-11"
        ),
        ("step_range", json.dumps({"episode_id": first, "start": 5, "end": 2})): "error: start 5 is after end 2",
        ("memory_file_at", json.dumps({"episode_id": first, "path": "map.md", "step": -1})): "error: step -1",
        ("memory_file_at", json.dumps({"episode_id": first, "path": 3, "step": 1})): "error: path must be",
        ("memory_file_at", json.dumps({"episode_id": first, "path": "  ", "step": 1})): "error: path must be",
        ("memory_file_at", json.dumps({"episode_id": first, "path": "map.md", "step": 1.0})): "error: step must be",
        ("memory_file_at", "not json"): "error: arguments are not valid JSON",
        ("memory_file_at", "[1, 2]"): "error: arguments must be a JSON object",
    }
    for (name, arguments), expected in errors.items():
        assert call_tool(store, name, json.loads(arguments) if arguments.startswith("{") else arguments).startswith(
            expected
        ), (name, arguments)


def test_empty_and_unknown_runs(store):
    run_id = _run(store, "crafter", "empty")
    digest = build_digest(store, run_id)
    assert digest.episodes == [] and digest.files == {} and digest.mean_progression == 0.0
    assert "no episodes" in digest.to_text() and len(digest.to_text(budget_chars=100)) <= 100
    with pytest.raises(DigestError, match="no run 999"):
        build_digest(store, 999)
