"""Loop 1: patches, proposal checks, the three critics, and real iterations end to end."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from automem.cli import app
from automem.memory.structure import load_builtin
from automem.optimize.critics import CommandCritic, HeuristicCritic, LLMCritic, check_proposal, make_critic
from automem.optimize.gate import Gate
from automem.optimize.loop import OptimizeConfig, OptimizeError, Optimizer, Score, pareto_front
from automem.optimize.patch import PatchError, apply_patch

CRAFTER = load_builtin("crafter-v0")


def test_patch_paths_by_key_index_add_and_remove():
    data = CRAFTER.model_dump(mode="json")
    out = apply_patch(
        data,
        [
            {"path": "files[map.md].max_lines", "value": 44},
            {"path": "files[0].pinned", "value": False},
            {"path": "phases[LOG].budget", "value": 1},
            {"path": "helpers[+]", "value": {"name": "stuck_detector", "params": {"window": 9}}},
            {"path": "files[survival.md]", "value": None},
            {"path": "context.history_steps", "value": 7},
        ],
    )
    files = {f["path"]: f for f in out["files"]}
    assert files["map.md"]["max_lines"] == 44 and "survival.md" not in files
    assert out["files"][0]["pinned"] is False and out["phases"][0]["budget"] == 1
    assert out["helpers"][-1]["params"] == {"window": 9} and out["context"]["history_steps"] == 7
    assert data["context"]["history_steps"] != 7  # the input is not modified
    for bad, message in [
        ({"path": "files[nope.md].max_lines", "value": 1}, "no files item 'nope.md'"),
        ({"path": "files[9].pinned", "value": True}, "no index 9"),
        ({"path": "context.nothing.deeper", "value": 1}, "no field nothing"),
        ({"path": "[0]", "value": 1}, "must start with a field name"),
        ({"value": 1}, "needs a 'path'"),
    ]:
        with pytest.raises(PatchError, match=message):
            apply_patch(data, [bad])


def test_proposals_are_checked_like_a_persons_edit():
    child, analysis = check_proposal(
        CRAFTER, {"analysis": "map grows", "changes": [{"path": "files[map.md].max_lines", "value": 12}]}, author="t"
    )
    assert child.parent == CRAFTER.id and child.author == "t" and analysis == "map grows"
    with pytest.raises(ValueError, match="only wording changed"):
        check_proposal(CRAFTER, {"changes": [{"path": "description", "value": "other words"}]}, author="t")
    with pytest.raises(ValueError, match="identical"):
        check_proposal(CRAFTER, {"changes": [{"path": "context.history_steps", "value": 4}]}, author="t")
    with pytest.raises(ValueError, match=r"phases.0.budget"):
        check_proposal(CRAFTER, {"changes": [{"path": "phases[LOG].budget", "value": 99}]}, author="t")
    with pytest.raises(ValueError, match="expected 'changes'"):
        check_proposal(CRAFTER, {"analysis": "nothing"}, author="t")
    whole = CRAFTER.model_dump(mode="json") | {"fallback_action": "do"}
    child, _ = check_proposal(CRAFTER, {"analysis": "x", "structure": whole}, author="t")
    assert child.fallback_action == "do"


def _program(tmp_path, body: str) -> str:
    script = tmp_path / "critic.py"
    script.write_text(body)
    return f"{sys.executable} {script}"


def test_command_critic_reads_a_structure_back(tmp_path):
    ok = _program(tmp_path, "import sys, json\nsys.stdin.read()\nprint('```json')\n"
                  "print(json.dumps({'analysis': 'cap it', 'changes': [{'path': 'files[map.md].max_lines', "
                  "'value': 15}]}))\nprint('```')\n")  # fmt: skip
    (proposal,) = CommandCritic(ok).propose(CRAFTER, "digest", 1, set())
    assert proposal.structure is not None and proposal.analysis == "cap it"
    assert next(f for f in proposal.structure.files if f.path == "map.md").max_lines == 15
    garbage = _program(tmp_path, "import sys\nsys.stdin.read()\nprint('no idea: [')\n")
    (refused,) = CommandCritic(garbage).propose(CRAFTER, "digest", 1, set())
    assert refused.structure is None and refused.attempts == 3 and len(refused.errors) == 3
    failing = _program(tmp_path, "import sys\nsys.exit(3)\n")
    (failed,) = CommandCritic(failing).propose(CRAFTER, "digest", 1, set())
    assert failed.structure is None and "exit code 3" in failed.errors[0]
    with pytest.raises(ValueError, match="needs a program"):
        make_critic("command:")


@pytest.mark.model
def test_llm_critic_with_the_bundled_model_is_validated_or_refused_with_reasons(engine):
    """The bundled 135M model as critic, constrained to the patch schema's grammar: whatever it
    proposes either passes the structure's validation or is refused with the reasons."""
    critic = LLMCritic(engine, max_tokens=200, temperature=0.2)
    assert critic.grammar() is not None and "changes" in critic.grammar()
    (proposal,) = critic.propose(CRAFTER, "episodes: 2, mean progression 0.0; map.md: 9 writes, 0 reads", 1, set())
    assert 1 <= proposal.attempts <= 3
    assert proposal.raw.lstrip().startswith("{")
    if proposal.structure is None:
        assert len(proposal.errors) == proposal.attempts
    else:
        assert proposal.structure.parent == CRAFTER.id and proposal.structure.author.startswith("critic:")


def test_the_gate_pairs_seeds_and_does_not_accept_noise():
    gate = Gate()  # min gain 1, more than 1 standard error
    parent = {f"a/{i}": 4.5 for i in range(6)}
    one_seed = {**parent, "a/0": 9.0}  # one achievement more on one seed: exactly one standard error
    verdict = gate.decide(one_seed, parent, candidate_tokens=500, parent_tokens=500)
    assert verdict.status == "rejected" and "within 1 standard error(s)" in verdict.reason
    assert "paired gain +0.75 ± 0.75 over 6 seed(s) (1 better, 0 worse, 5 same)" in verdict.reason
    two_seeds = {**one_seed, "a/1": 9.0}
    verdict = gate.decide(two_seeds, parent, candidate_tokens=900, parent_tokens=500)
    assert verdict.accepted and verdict.figures.better == 2 and verdict.figures.gain == pytest.approx(1.5)
    assert verdict.record()["settings"] == {
        "min_gain": 1.0, "se_multiple": 1.0, "race_fraction": 0.5, "race_hope": 4.55
    }  # fmt: skip
    assert not Gate(min_gain=2.0).decide(two_seeds, parent, candidate_tokens=1, parent_tokens=1).accepted
    assert Gate(se_multiple=3.0).decide(two_seeds, parent, candidate_tokens=1, parent_tokens=1).status == "rejected"
    tie = gate.decide(parent, parent, candidate_tokens=400, parent_tokens=500)
    assert tie.status == "tied" and "cheaper (400 < 500 tokens per step)" in tie.reason and not tie.accepted
    assert gate.decide(parent, parent, candidate_tokens=600, parent_tokens=500).status == "rejected"
    worse = gate.decide({**parent, "a/2": 0.0}, parent, candidate_tokens=1, parent_tokens=1)
    assert worse.status == "rejected" and "not positive" in worse.reason
    # only the pairs both finished count: a seed the candidate failed is not a loss of 4.5
    assert gate.decide({"a/0": 4.5}, parent, candidate_tokens=1, parent_tokens=1).figures.n == 1
    assert gate.decide({}, parent, candidate_tokens=1, parent_tokens=1).status == "rejected"
    with pytest.raises(ValueError):
        Gate(race_fraction=1.5)


def test_racing_stops_only_candidates_that_cannot_catch_up():
    gate = Gate()
    assert gate.race_seeds([42, 43, 44, 45, 46, 47]) == [42, 43, 44]
    assert gate.race_seeds([0, 1]) is None and Gate(race_fraction=0).race_seeds(list(range(10))) is None
    parent = {f"a/{i}": 4.5 for i in range(6)}
    # a heat that tied everywhere still hopes for one achievement (4.55) on each of the 3 left:
    # (0 + 3 x 4.55) / 6 = +2.27 >= 1, so it plays on
    tie = {"a/0": 4.5, "a/1": 4.5, "a/2": 4.5}
    assert gate.hopeless(tie, parent, remaining=3) is None
    # without that hope a tie is bounded by its best gain so far, 0, and stopped
    flat = Gate(race_hope=0).hopeless(tie, parent, remaining=3)
    assert flat is not None and flat.status == "raced_out" and flat.skipped == 3
    assert "at most +0.00 over all" in flat.reason
    # two achievements lost in the heat: (-9 + 3 x 4.55) / 6 = +0.78 < 1, stopped even with hope
    lost = gate.hopeless({"a/0": 0.0, "a/1": 0.0, "a/2": 4.5}, parent, remaining=3)
    assert lost is not None and "even gaining +4.55 on each of the 3 left" in lost.reason
    # one seed 4.5 better and one 4.5 worse: the hope reaches (0 + 3 x 4.55) / 6 >= 1, so it plays on
    assert gate.hopeless({"a/0": 9.0, "a/1": 0.0, "a/2": 4.5}, parent, remaining=3) is None
    # a large heat gain is its own bound: 9 better on one seed, 9 hoped on each left
    assert Gate(min_gain=5.0).hopeless({"a/0": 13.5, "a/1": 4.5, "a/2": 4.5}, parent, remaining=3) is None
    # a small gain that cannot reach a high minimum even at its best pace
    assert Gate(min_gain=3.0, race_hope=1.0).hopeless({"a/0": 6.0, "a/1": 4.5, "a/2": 4.5}, parent, remaining=3)
    with pytest.raises(ValueError):
        Gate(race_hope=-1)


def test_front_keeps_what_no_other_beats_on_every_seed():
    parent = Score(1, 10.0, 1.0, 500.0, {"a/0": 10.0, "a/1": 10.0})
    better = Score(2, 12.0, 1.0, 600.0, {"a/0": 14.0, "a/1": 10.0})
    other = Score(3, 10.0, 2.0, 400.0, {"a/0": 0.0, "a/1": 20.0})
    dear_twin = Score(4, 10.0, 2.0, 450.0, {"a/0": 0.0, "a/1": 20.0})
    s1, s2, s3, s4 = (CRAFTER.derive(author="x", description=str(i)) for i in range(4))
    front = pareto_front([(s1, parent), (s2, better), (s3, other), (s4, dear_twin)])
    # parent is beaten by `better` on every seed; the dearer twin of `other` by its cheaper twin
    assert [sc.run_id for _, sc in front] == [2, 3]


@pytest.mark.model
def test_a_real_optimization_with_the_heuristic_critic_resumes_after_an_interruption(store):
    config = OptimizeConfig(
        name="opt-h", game="crafter", root=CRAFTER, agent_engine="llamacpp", critic="heuristic", seeds=[0, 1, 2],
        iterations=2, candidates=1, max_steps=2, gate=Gate(race_hope=0),
    )  # fmt: skip
    events: list[str] = []

    def stop_in_iteration_1(message: str) -> None:
        events.append(message)
        if message.startswith("iteration 1:"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Optimizer(store, config, HeuristicCritic(), on_event=stop_in_iteration_1).run()
    rows = list(store.db["optimize_iterations"].rows_where(order_by="id"))
    # every candidate scores 0 in 2 steps: none is accepted; each first attempt earns one retry
    assert [(r["candidate"], r["retry_of"]) for r in rows] == [(0, None), (1, 0)]
    assert all(r["status"] in ("rejected", "tied", "raced_out") for r in rows), [r["reason"] for r in rows]
    first = rows[0]
    gate = json.loads(first["gate"])
    assert gate["settings"]["min_gain"] == 1.0 and gate["gain"] == 0.0 and gate["n"] >= 2
    assert "Your previous attempt on this structure was not kept" in rows[1]["digest"]
    # racing: two of the three seeds first; 0 gained there cannot become a gain of 1 on the third
    assert first["status"] == "raced_out" and gate["heat_seeds"] == [0, 1] and gate["skipped"] == 1
    assert gate["saved_seconds"] > 0 and len(store.episodes(first["candidate_run_id"])) == 2
    assert first["digest"] and "map.md" in first["digest"] and first["analysis"].startswith("[")
    assert json.loads(first["changes"]) and first["parent_id"] == CRAFTER.id
    assert first["parent_mean"] is not None and first["candidate_run_id"] is not None
    assert store.db["optimizations"].get(1)["status"] == "interrupted"
    runs_before = store.db["runs"].count
    iteration_0 = rows
    result = Optimizer(store, config, HeuristicCritic(), on_event=events.append).run()
    assert "iteration 0: already done" in events
    rows = list(store.db["optimize_iterations"].rows_where(order_by="id"))
    # iteration 0 untouched (nothing of it replayed); the resumed critic knows both structures
    # iteration 0 tried (raced out, never scored) and proposes neither again. Whether a 2-step
    # digest leaves it another revision depends on what the model did in those steps
    tried = {first["candidate_id"], iteration_0[1]["candidate_id"]}
    assert rows[:2] == iteration_0 and rows[2:] and all(r["iteration"] == 1 for r in rows[2:])
    later = rows[2:]
    if later[0]["status"] == "invalid":
        assert "no applicable revision" in later[0]["reason"] and store.db["runs"].count == runs_before
    else:
        assert not tried & {r["candidate_id"] for r in later} and store.db["runs"].count > runs_before
    assert store.db["optimizations"].get(1)["status"] == "finished"
    assert result.accepted == 0 and result.root_score.run_id == first["parent_run_id"]
    with pytest.raises(OptimizeError, match="other settings"):
        Optimizer(store, OptimizeConfig(**{**config.__dict__, "seeds": [5]}), HeuristicCritic()).run()


@pytest.mark.model
def test_optimize_cli_with_the_bundled_model_as_critic_and_the_tree(tmp_path):
    runner = CliRunner()
    db = str(tmp_path / "a.db")
    result = runner.invoke(
        app,
        ["optimize", "crafter", "--critic", "llamacpp", "--seeds", "0-1", "--max-steps", "2", "--iterations", "1",
         "--candidates", "1", "--digest-chars", "2000", "--run-name", "opt-llm", "--db", db],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "critic: LLM critic" in result.output and "best: crafter-v0" in result.output
    import sqlite3

    (status, reason, attempts) = (
        sqlite3.connect(db).execute("SELECT status, reason, attempts FROM optimize_iterations").fetchone()
    )
    assert status in ("accepted", "rejected", "invalid") and reason
    tree = runner.invoke(app, ["structures", "tree", "--db", db])
    assert tree.exit_code == 0 and "crafter-v0" in tree.output
    bad = runner.invoke(app, ["optimize", "crafter", "--seeds", "x", "--db", db])
    assert bad.exit_code == 2
    bad = runner.invoke(app, ["optimize", "crafter", "--parent", "worst", "--db", db])
    assert bad.exit_code == 2 and "--parent" in bad.output


def test_the_heuristic_critic_reads_the_digests_numbers(store, recorded):
    from automem.optimize.digest import build_digest
    from automem.optimize.signals import signals_from_digest

    episode = recorded(store, "crafter-seed7")
    run_id = store.episode(episode)["run_id"]
    signals = signals_from_digest(build_digest(store, run_id))
    assert signals.steps == 12 and signals.longest_zero_reward_streak == 12
    assert signals.files["survival.md"].never_read and signals.files["strategy.md"].pinned
    assert signals.files["map.md"].writes == 2 and signals.files["actions.md"].refused_writes == 1
    critic = HeuristicCritic()
    critic.signals = signals
    proposals = critic.propose(CRAFTER, "digest", 3, set())
    assert proposals and all(p.structure is not None and p.analysis.startswith("[") for p in proposals)
    assert any("survival.md" in p.analysis for p in proposals)  # never read: dropped


@pytest.mark.model
def test_llm_critic_looks_up_steps_and_files_with_tools_before_answering(engine, store, recorded):
    """In-process llama.cpp takes tools (offered in the system message, the answer held to a call or a
    message by a grammar, since SmolLM2's template knows no tools): the critic may read any step
    range or memory file of the store's episodes before its constrained answer."""
    from automem.engines.base import supports_tools

    episode = recorded(store, "crafter-seed7")
    assert supports_tools(engine)
    critic = LLMCritic(engine, max_tokens=150, temperature=0.2, tool_rounds=2)
    critic.store = store
    digest = f"ep {episode} seed 7: 12 steps, progression 0; step 7 refused an insert into actions.md"
    messages, looked_up = critic.investigate(
        [{"role": "system", "content": "You review an agent's episodes. Use the tools to look at steps."},
         {"role": "user", "content": f"{digest}. Look at the steps around step 7 of episode {episode}."}],
        seed=1,
    )  # fmt: skip
    assert looked_up, "the model asked for nothing"
    for call in looked_up:
        assert call["name"] in ("step_range", "memory_file_at") and call["result"]
    assert any(f"{call['name']} result:" in m["content"] for m in messages for call in looked_up)


@pytest.mark.model
def test_llm_critic_constrained_to_the_whole_structure_schema(engine):
    """``whole:SPEC``: the answer is held to Structure's own JSON schema; a cut answer is refused
    with the reason (a 135M model cannot write a whole structure in 150 tokens)."""
    critic = LLMCritic(engine, whole=True, max_tokens=150, temperature=0.2, attempts=1)
    assert "fallback_action" in critic.grammar() and "phases" in critic.grammar()
    (proposal,) = critic.propose(CRAFTER, "map.md: 9 writes, 0 reads", 1, set())
    assert proposal.raw.lstrip().startswith("{") and proposal.attempts == 1
    if proposal.structure is None:
        assert proposal.errors and proposal.errors[0].startswith("attempt 1: ")
