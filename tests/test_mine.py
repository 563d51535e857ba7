"""Loop 2 mining on recorded episodes: signals, decisions with reasons, clean-up, split, files."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from automem.cli import app
from automem.finetune.mine import MineConfig, MiningError, candidates_of, mine

RUN = "fixture-crafter-seed7"


def test_candidates_and_their_signals(store, recorded):
    episode = recorded(store, "crafter-seed7")
    every = candidates_of(store, episode, RUN, k=10)
    items = [c for c in every if c.verb != "DONE"]
    assert [(c.step, c.phase, c.verb, c.path, c.ok) for c in items] == [
        (7, "LOG", "insert", "actions.md", False),
        (7, "LOG", "append", "actions.md", True),
        (7, "PLAN", "count", "actions.md", True),
        (10, "LOG", "upsert", "map.md", True),
        (10, "LOG", "upsert", "map.md", True),
        (10, "PLAN", "search", "map.md", True),
    ]
    append = items[1]
    assert append.signals == {"op_ok": True, "read_later": True, "not_redundant": True, "progress_after": False}
    assert append.score == 3.0
    assert items[2].signals == {
        "op_ok": True, "productive_read": False, "found_something": True, "progress_after": False
    }  # fmt: skip
    assert all(c.command == c.command.strip() and not c.command.startswith("ACT") for c in items)
    # the decisions not to write: every LOG turn that answered only DONE (10 of the 14 LOG turns)
    dones = [c for c in every if c.verb == "DONE"]
    assert [c.step for c in dones] == [0, 1, 2, 3, 4, 5, 6, 8, 9, 11] and not any(c.relabelled for c in dones)
    by_step = {c.step: c for c in dones}
    # step 2 showed what step 1 showed, after an action that earned nothing, and step 3 wrote nothing
    assert by_step[2].signals == {
        "op_ok": True, "unchanged_observation": True, "no_event": True, "no_catchup": True, "progress_after": False
    }  # fmt: skip
    assert by_step[2].score == 4.0
    assert by_step[0].signals["no_event"] is False  # the first observation is all new
    assert by_step[6].signals["no_catchup"] is False  # step 7 had to write (the append to actions.md)


def test_mine_writes_chat_jsonl_with_the_exact_prompt_and_every_decision(store, recorded):
    recorded(store, "crafter-seed7")
    recorded(store, "nethack-seed7")  # no memory operations: contributes nothing
    result = mine(store, MineConfig(runs=[RUN, "fixture-nethack-seed7"], out="ds", min_score=2.0, val_fraction=0.0))
    # 6 operations and 18 DONE turns (10 + nethack's 8); 3 writes pass, and as many DONEs as the
    # default DONE share of 0.5 allows
    assert (result.candidates, result.kept, result.train, result.val) == (24, 6, 6, 0)
    assert (result.done_candidates, result.done_share, result.relabelled) == (18, 0.5, 0)
    examples = [json.loads(line) for line in (result.folder / "train.jsonl").read_text().splitlines()]
    for example in examples:
        *prompt, answer = example["messages"]
        assert prompt == store.call_prompt(example["meta"]["call_id"])
        assert answer["role"] == "assistant" and answer["content"].split()[0] in {"append", "upsert", "DONE"}
    done = next(e for e in examples if e["meta"]["verb"] == "DONE")
    assert done["messages"][-1] == {"role": "assistant", "content": "DONE"} and done["meta"]["phase"] == "LOG"
    decisions = [json.loads(line) for line in (result.folder / "decisions.jsonl").read_text().splitlines()]
    assert len(decisions) == 24 and all(d["reason"] for d in decisions)
    refused = next(d for d in decisions if d["verb"] == "insert")
    assert not refused["kept"] and refused["reason"] == "dropped: the operation was refused"
    assert sum(d["kept"] for d in decisions) == 6
    count = next(d for d in decisions if d["verb"] == "count")
    assert count["reason"] == "dropped: score 1.0 < 2.0 (held: op_ok, found_something)"
    over = [d for d in decisions if d["reason"].startswith("dropped: over the DONE share 0.50")]
    assert over and all(d["verb"] == "DONE" for d in over)
    row = store.db["datasets"].get(result.dataset_id)
    assert row["name"] == "ds" and row["kept"] == 6 and json.loads(row["runs"]) == [RUN, "fixture-nethack-seed7"]
    selection = json.loads((result.folder / "selection.json").read_text())
    assert selection["config"]["min_score"] == 2.0 and selection["done_share"] == 0.5
    pairs = [["NetHackScore-v0", 7], ["default", 7]]  # every episode of the runs, mined from or not
    assert selection["pairs"] == pairs and json.loads(row["selection"])["pairs"] == pairs
    with pytest.raises(MiningError, match="exists"):
        mine(store, MineConfig(runs=[RUN], out="ds"))


def test_thresholds_duplicates_split_and_errors(store, recorded):
    recorded(store, "crafter-seed7")
    strict = mine(store, MineConfig(runs=[RUN], out="strict", min_score=3.0))
    # the 3 writes that succeeded, added something new and were read later, and 3 DONEs (the share)
    assert strict.kept == 6 and strict.done_share == 0.5
    dupes = mine(store, MineConfig(runs=[RUN], out="dupes", min_score=1.0, near_duplicate=0.5))
    reasons = [json.loads(x)["reason"] for x in (dupes.folder / "decisions.jsonl").read_text().splitlines()]
    assert any(r.startswith("dropped: near-duplicate of a kept upsert map.md") for r in reasons)
    split = mine(store, MineConfig(runs=[RUN], out="allval", min_score=1.0, val_fraction=0.9999))
    assert split.train + split.val == split.kept and {split.train, split.val} & {0}  # one episode: one side
    with pytest.raises(MiningError, match="only 6 examples pass"):
        mine(store, MineConfig(runs=[RUN], out="few", min_score=3.0, min_examples=7))
    no_done = mine(store, MineConfig(runs=[RUN], out="nodone", min_score=3.0, done_share=0.0))
    assert (no_done.kept, no_done.done_share) == (3, 0.0)
    all_done = mine(store, MineConfig(runs=[RUN], out="alldone", min_score=3.0, done_share=1.0))
    assert all_done.kept == 3 + 6  # every DONE with a score of 3 or more (steps 1-5 and 8)
    with pytest.raises(MiningError, match="no run named 'nope'"):
        mine(store, MineConfig(runs=["nope"], out="x"))


@pytest.mark.model
def test_an_llm_judge_rates_every_candidate(store, recorded, engine):
    recorded(store, "crafter-seed7")
    result = mine(store, MineConfig(runs=[RUN], out="judged", judge="llamacpp", min_score=1.0), judge=engine)
    decisions = [json.loads(x) for x in (result.folder / "decisions.jsonl").read_text().splitlines()]
    assert all(d["judge"] in (1, 2, 3, 4, 5) for d in decisions)
    assert all("judge" in d["reason"] for d in decisions if d["kept"])


def test_mine_cli(tmp_path, recorded):
    from automem.store import Store

    db = tmp_path / "a.db"
    store = Store(db)
    recorded(store, "crafter-seed7")
    store.close()
    runner = CliRunner()
    ok = runner.invoke(app, ["mine", "--runs", RUN, "--out", "d1", "--db", str(db)])
    assert ok.exit_code == 0, ok.output
    assert "6 of 16 kept; DONE 50%" in ok.output and (tmp_path / "datasets" / "d1" / "train.jsonl").exists()
    bad = runner.invoke(app, ["mine", "--runs", RUN, "--out", "../escape", "--db", str(db)])
    assert bad.exit_code == 2 and "plain name" in bad.output
    missing = runner.invoke(app, ["mine", "--runs", "nope", "--out", "d2", "--db", str(db)])
    assert missing.exit_code == 2 and "no run named" in missing.output


def test_compare_reports_memory_quality_per_run(tmp_path, recorded):
    from automem.finetune.compare import quality
    from automem.store import Store

    db = tmp_path / "a.db"
    store = Store(db)
    recorded(store, "crafter-seed7")
    recorded(store, "nethack-seed7")
    q = quality(store, RUN)
    assert (q.game, q.episodes) == ("crafter", 1)
    assert q.valid_op_rate == pytest.approx(5 / 6)  # the refused insert
    assert q.writes_read_later == 1.0 and q.redundant_write_rate == 0.0
    assert q.calls_per_step == pytest.approx(28 / 12) and q.ops_per_step == pytest.approx(6 / 12)
    store.close()
    result = CliRunner().invoke(app, ["compare", RUN, "fixture-nethack-seed7", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["runs"]
    assert [r["run"] for r in rows] == [RUN, "fixture-nethack-seed7"]
    # the NetHack fixture's model issued no memory operation: no rate, rather than a rate of 0
    assert rows[1]["ops_per_step"] == 0.0 and rows[1]["valid_op_rate"] is None
    assert json.loads(result.output)["warning"] is None  # no specialist among them
    table = CliRunner().invoke(app, ["compare", RUN, "--db", str(db)])
    assert table.exit_code == 0 and "writes read later" in table.output
    nothing = CliRunner().invoke(app, ["compare", "fixture-nethack-seed7", "--db", str(db)])
    assert nothing.exit_code == 0
    assert any(line.startswith("│ valid memory operations") and line.rstrip().endswith("- │")
               for line in nothing.output.splitlines())  # fmt: skip
    missing = CliRunner().invoke(app, ["compare", "nope", "--db", str(db)])
    assert missing.exit_code == 2 and "no run named" in missing.output


def test_redundant_writes_are_relabelled_and_repeated_empty_lookups_dropped(store, recorded):
    """Crafter seed 1004, played by the bundled model: two LOG turns repeated the write just made
    (steps 11 and 26), and step 27 searched actions.md for the same missing text three times."""
    episode = recorded(store, "crafter-seed1004")
    items = candidates_of(store, episode, "fixture-crafter-seed1004", k=10)
    relabelled = [c for c in items if c.relabelled]
    assert [(c.step, c.turn, c.command, c.path) for c in relabelled] == [
        (11, 1, "DONE", "actions.md"), (26, 1, "DONE", "strategy.md")
    ]  # fmt: skip
    originals = [c for c in items if c.call_id in {r.call_id for r in relabelled} and not c.relabelled]
    assert all(c.verb == "append" and c.signals["not_redundant"] is False for c in originals)
    searches = [c for c in items if c.step == 27 and c.verb == "search"]
    assert [c.signals.get("repeated_empty", False) for c in searches] == [False, True, True]
    assert all(c.signals["found_something"] is False for c in searches)
    result = mine(store, MineConfig(runs=["fixture-crafter-seed1004"], out="relabel", val_fraction=0.0))
    decisions = {
        (d["call_id"], d["relabelled"]): d for d in map(json.loads, (result.folder / "decisions.jsonl").open())
    }
    for r in relabelled:
        assert decisions[(r.call_id, True)]["kept"], decisions[(r.call_id, True)]["reason"]
        assert decisions[(r.call_id, True)]["reason"].startswith("kept (relabelled to DONE)")
        assert decisions[(r.call_id, False)]["reason"].startswith("dropped: a redundant write")
    repeated = [decisions[(c.call_id, False)]["reason"] for c in searches[1:]]
    assert repeated == ["dropped: a look-up that found nothing, repeated in the same step"] * 2
    assert result.relabelled == 2 and result.done_share == 0.5
    examples = [json.loads(line) for line in (result.folder / "train.jsonl").open()]
    fixed = [e for e in examples if e["meta"]["relabelled"]]
    assert len(fixed) == 2 and all(e["messages"][-1]["content"] == "DONE" for e in fixed)
    assert all(e["messages"][:-1] == store.call_prompt(e["meta"]["call_id"]) for e in fixed)
