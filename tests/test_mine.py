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
    items = candidates_of(store, episode, RUN, k=10)
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
    assert items[2].signals == {"op_ok": True, "productive_read": False, "progress_after": False}
    assert all(c.command == c.command.strip() and not c.command.startswith("ACT") for c in items)


def test_mine_writes_chat_jsonl_with_the_exact_prompt_and_every_decision(store, recorded):
    recorded(store, "crafter-seed7")
    recorded(store, "nethack-seed7")  # no memory operations: contributes nothing
    result = mine(store, MineConfig(runs=[RUN, "fixture-nethack-seed7"], out="ds", min_score=2.0, val_fraction=0.0))
    assert (result.candidates, result.kept, result.train, result.val) == (6, 3, 3, 0)
    examples = [json.loads(line) for line in (result.folder / "train.jsonl").read_text().splitlines()]
    for example in examples:
        *prompt, answer = example["messages"]
        assert prompt == store.call_prompt(example["meta"]["call_id"])
        assert answer["role"] == "assistant" and answer["content"].split()[0] in {"append", "upsert"}
    decisions = [json.loads(line) for line in (result.folder / "decisions.jsonl").read_text().splitlines()]
    assert len(decisions) == 6 and all(d["reason"] for d in decisions)
    refused = next(d for d in decisions if d["verb"] == "insert")
    assert not refused["kept"] and refused["reason"] == "dropped: the operation was refused"
    assert sum(d["kept"] for d in decisions) == 3
    assert next(d for d in decisions if d["verb"] == "count")["reason"] == "dropped: score 1.0 < 2.0 (held: op_ok)"
    row = store.db["datasets"].get(result.dataset_id)
    assert row["name"] == "ds" and row["kept"] == 3 and json.loads(row["runs"]) == [RUN, "fixture-nethack-seed7"]
    assert json.loads((result.folder / "selection.json").read_text())["config"]["min_score"] == 2.0
    with pytest.raises(MiningError, match="exists"):
        mine(store, MineConfig(runs=[RUN], out="ds"))


def test_thresholds_duplicates_split_and_errors(store, recorded):
    recorded(store, "crafter-seed7")
    strict = mine(store, MineConfig(runs=[RUN], out="strict", min_score=3.0))
    assert strict.kept == 3  # the writes that succeeded, added something new and were read later
    dupes = mine(store, MineConfig(runs=[RUN], out="dupes", min_score=1.0, near_duplicate=0.5))
    reasons = [json.loads(x)["reason"] for x in (dupes.folder / "decisions.jsonl").read_text().splitlines()]
    assert any(r.startswith("dropped: near-duplicate of a kept upsert map.md") for r in reasons)
    split = mine(store, MineConfig(runs=[RUN], out="allval", min_score=1.0, val_fraction=0.9999))
    assert split.train + split.val == split.kept and {split.train, split.val} & {0}  # one episode: one side
    with pytest.raises(MiningError, match="only 3 examples pass"):
        mine(store, MineConfig(runs=[RUN], out="few", min_score=3.0, min_examples=5))
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
    assert "3 of 6 kept" in ok.output and (tmp_path / "datasets" / "d1" / "train.jsonl").exists()
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
    rows = json.loads(result.output)
    assert [r["run"] for r in rows] == [RUN, "fixture-nethack-seed7"] and rows[1]["valid_op_rate"] == 0.0
    table = CliRunner().invoke(app, ["compare", RUN, "--db", str(db)])
    assert table.exit_code == 0 and "writes read later" in table.output
    missing = CliRunner().invoke(app, ["compare", "nope", "--db", str(db)])
    assert missing.exit_code == 2 and "no run named" in missing.output
