from __future__ import annotations

import json
import sqlite3

from automem.memory.structure import load_builtin
from automem.store import CallRecord, OpRecord, StepRecord, Store

TABLES = {"structures", "runs", "episodes", "steps", "llm_calls", "memory_ops", "pipelines", "pipeline_stages"}


def _episode(store: Store) -> int:
    s = load_builtin("crafter-v0")
    sid = store.save_structure(s)
    assert store.save_structure(s) == sid  # same content, one row
    run = store.create_run(
        name="r1", game="crafter", task="default", structure_id=sid, engine="llamacpp", memory_engine=None, config={}
    )
    return store.start_episode(
        run_id=run,
        game="crafter",
        task="default",
        seed=3,
        structure_id=sid,
        engine="llamacpp",
        model="m.gguf",
        memory_dir="/tmp/x",
        memory_seed={"a.md": "hi"},
    )


def test_schema_tables_and_wal(store: Store) -> None:
    names = set(store.db.table_names())
    assert TABLES <= names
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopen_applies_nothing_twice(tmp_path) -> None:
    Store(tmp_path / "a.db").close()
    again = Store(tmp_path / "a.db")
    rows = list(again.db["_sqlite_migrations"].rows)
    assert [r["name"] for r in rows] == [
        "m001_initial",
        "m002_jobs",
        "m003_optimize",
        "m004_datasets",
        "m005_training_runs",
        "m006_job_cancel_requested",
        "m007_episode_owner",
        "m008_gate_and_retries",
        "m009_episode_memory_carry",
        "m010_pipelines",
    ]


def test_step_with_calls_and_ops_is_readable_with_plain_sqlite(store: Store) -> None:
    ep = _episode(store)
    call = _call()
    op = _op()
    rec = StepRecord(
        step=0,
        observation="obs",
        helper_notes="",
        frame={"rows": ["@"], "fg": [[7]]},
        action="noop",
        action_source="model",
        reward=1.0,
        done=False,
        progression=4.5,
        achievements=["collect_wood"],
        invalid_outputs=0,
        model_s=0.1,
        game_s=0.01,
        harness_s=0.001,
        calls=[call],
        ops=[op],
    )
    store.record_step(ep, rec)
    con = sqlite3.connect(store.path)
    step = con.execute("select action, reward, llm_calls, memory_ops, cached_tokens from steps").fetchone()
    assert step == ("noop", 1.0, 1, 1, 80)
    op_row = con.execute("select verb, ok, diff, llm_call_id from memory_ops_full").fetchone()
    call_id = con.execute("select id from llm_calls").fetchone()[0]
    assert op_row[0] == "append" and op_row[1] == 1 and "+x" in op_row[2] and op_row[3] == call_id
    full = con.execute("select content_before, content_after from memory_ops_full").fetchone()
    assert full == ("hi", "hi\nx")
    prompt, grammar = con.execute("select prompt, grammar from llm_calls_full").fetchone()
    assert json.loads(prompt) == [{"role": "user", "content": "hi"}] and grammar == 'root ::= "DONE"'
    assert store.call_prompt(call_id) == [{"role": "user", "content": "hi"}]
    # the same texts written again are stored once
    store.record_step(ep, StepRecord(**{**rec.__dict__, "step": 1}))
    assert con.execute("select count(*) from texts").fetchone()[0] == 3  # "hi" is both prompt and file
    episode = con.execute("select steps, total_reward, achievements from episodes").fetchone()
    assert episode[0] == 2 and episode[1] == 2.0 and json.loads(episode[2]) == ["collect_wood"]


def _call(**changes) -> CallRecord:
    base = dict(
        phase="LOG",
        turn=0,
        engine="llamacpp",
        model="m",
        prompt=[{"role": "user", "content": "hi"}],
        grammar='root ::= "DONE"',
        response="append a.md: x",
        parsed="append a.md: x",
        valid=True,
        input_tokens=100,
        cached_tokens=80,
        output_tokens=5,
        latency_s=0.1,
        finish_reason="stop",
    )
    return CallRecord(**{**base, **changes})


def _op(**changes) -> OpRecord:
    base = dict(
        phase="LOG",
        turn=0,
        source="model",
        verb="append",
        path="a.md",
        args={"text": "x"},
        ok=True,
        message="ok",
        content_before="hi",
        content_after="hi\nx",
        call_index=0,
    )
    return OpRecord(**{**base, **changes})


def _step(**changes) -> StepRecord:
    base = dict(
        step=0,
        observation="o",
        helper_notes="",
        frame={},
        action="noop",
        action_source="model",
        reward=0.0,
        done=False,
        progression=0.0,
        achievements=[],
        invalid_outputs=0,
        model_s=0.0,
        game_s=0.0,
    )
    return StepRecord(**{**base, **changes})


def test_export_import_moves_an_episode_between_files(store: Store, tmp_path) -> None:
    ep = _episode(store)
    call = _call(
        phase="PLAN", prompt=[{"role": "system", "content": "S"}], grammar=None, response="ACT noop", parsed="ACT noop"
    )
    op = _op(phase="PLAN", verb="write", args={"text": "y"}, content_before=None, content_after="y")
    store.record_step(ep, _step(done=True, model_s=0.1, calls=[call], ops=[op]))
    bundle = store.export_episode(ep)
    other = Store(tmp_path / "other.db")
    sid = other.save_structure(load_builtin("crafter-v0"))
    run = other.create_run(
        name="r", game="crafter", task="default", structure_id=sid, engine="e", memory_engine=None, config={}
    )
    new = other.import_episode(json.loads(json.dumps(bundle)), run)
    row = other.db.execute("select content_after, llm_call_id from memory_ops_full where episode_id = ?", [new])
    after, call_id = row.fetchone()
    assert after == "y" and other.call_prompt(call_id) == [{"role": "system", "content": "S"}]
    other.close()


def test_a_failing_step_write_leaves_no_partial_rows(store: Store) -> None:
    ep = _episode(store)
    rec = _step()
    store.record_step(ep, rec)
    bad = StepRecord(**{**rec.__dict__, "calls": [], "ops": []})
    bad.ops = [
        OpRecord(
            phase="LOG",
            turn=0,
            source="model",
            verb="append",
            path="a",
            args={},
            ok=True,
            message="",
            content_before=None,
            content_after=None,
            call_index=5,
        )
    ]
    try:
        store.record_step(ep, bad)  # call_index 5 does not exist: the whole step must roll back
    except IndexError:
        pass
    assert store.db["steps"].count == 1 and store.db["memory_ops"].count == 0


def test_episodes_whose_process_died_are_marked_interrupted_by_the_next_start(tmp_path) -> None:
    """A run killed with SIGKILL (or crashed in native code) leaves its episode `running`; the next
    start on the same host sees that its process is gone and records it interrupted, once."""
    import subprocess
    import sys

    from typer.testing import CliRunner

    from automem.cli import app

    db = tmp_path / "a.db"
    store = Store(db)
    mine = _episode(store)  # this process: alive
    row = store.episode(mine)
    fields = {k: row[k] for k in ("run_id", "game", "task", "seed", "structure_id", "engine", "model", "memory_dir")}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = store.start_episode(**fields, memory_seed={})
    store.db["episodes"].update(orphan, {"pid": dead.pid})
    elsewhere = store.start_episode(**fields, memory_seed={})
    store.db["episodes"].update(elsewhere, {"pid": dead.pid, "host": "another-host"})  # not ours to judge
    store.close()
    assert CliRunner().invoke(app, ["jobs", "list", "--db", str(db)]).exit_code == 0  # any command that opens it
    store = Store(db)
    status = {e["id"]: (e["status"], e["ended_reason"]) for e in store.db["episodes"].rows}
    assert status[orphan] == ("interrupted", "orphaned")
    assert status[mine] == ("running", None) and status[elsewhere] == ("running", None)
    assert store.mark_orphaned_episodes() == []
    store.close()


def test_pending_migrations_are_listed_without_applying_them(tmp_path) -> None:
    import sqlite_utils

    old = tmp_path / "old.db"
    sqlite_utils.Database(old)["x"].insert({"a": 1})
    assert "m001_initial" in Store.pending_migrations(old)
    assert Store.pending_migrations(old) == Store.pending_migrations(old)  # read-only
    Store(old).close()
    assert Store.pending_migrations(old) == []
    assert Store.pending_migrations(tmp_path / "none.db") == []
