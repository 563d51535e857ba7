from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from automem.cli import app

runner = CliRunner()


def test_games_json_lists_all_three() -> None:
    result = runner.invoke(app, ["games", "--json"])
    assert result.exit_code == 0, result.output
    data = {g["game"]: g for g in json.loads(result.output)}
    assert {"crafter", "nethack", "minihack"} <= set(data)
    assert len(data["crafter"]["actions"]) == 17


def test_structures_commands(tmp_path) -> None:
    listed = runner.invoke(app, ["structures", "list", "--json"])
    assert listed.exit_code == 0 and {"crafter-v0", "none"} <= {s["name"] for s in json.loads(listed.output)}
    shown = runner.invoke(app, ["structures", "show", "nethack-v0"])
    assert shown.exit_code == 0 and "symbols.md" in shown.output
    out = tmp_path / "mine.yaml"
    assert runner.invoke(app, ["structures", "export", "crafter-v0", "-o", str(out)]).exit_code == 0
    ok = runner.invoke(app, ["structures", "validate", str(out)])
    assert ok.exit_code == 0 and "ok: crafter-v0" in ok.output
    out.write_text(out.read_text().replace("budget: 2", "budget: 0", 1))
    bad = runner.invoke(app, ["structures", "validate", str(out)])
    assert bad.exit_code == 2 and "phases.0.budget" in bad.output and "mine.yaml:" in bad.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "chess"], "unknown game"),
        (["run", "minihack", "--task", "NoSuchTask"], "task"),
        (["run", "crafter", "--seed", "abc"], "bad seed"),
        (["run", "crafter", "--structure", "/no/such/file.yaml"], "not found"),
        (["run", "crafter", "--structure", "nethack-v0"], "is for nethack"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, tmp_path) -> None:
    result = runner.invoke(app, [*args, "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 2


def test_missing_model_exits_1(tmp_path) -> None:
    result = runner.invoke(
        app, ["run", "crafter", "--engine", f"llamacpp:{tmp_path}/m.gguf", "--db", str(tmp_path / "x.db")]
    )
    assert result.exit_code == 1 and "model file not found" in result.output


@pytest.mark.model
def test_run_end_to_end_writes_the_database(tmp_path) -> None:
    db = tmp_path / "cli.db"
    result = runner.invoke(app, ["run", "crafter", "--steps", "2", "--seed", "7", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["episodes"][0]["steps"] == 2 and summary["episodes"][0]["seed"] == 7
    con = sqlite3.connect(db)
    assert con.execute("select count(*) from steps").fetchone()[0] == 2
    assert con.execute("select count(*) from llm_calls").fetchone()[0] >= 2


@pytest.mark.model
def test_engines_list_and_test(tmp_path, monkeypatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[engines.small]\nspec = "llamacpp"\n[engines.small.options]\nn_ctx = 2048\n')
    monkeypatch.setenv("AUTOMEM_CONFIG", str(config))
    listed = runner.invoke(app, ["engines", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.output)
    assert {"llamacpp", "openai", "ollama", "transformers", "vllm"} <= set(data["engines"])
    assert data["profiles"]["small"]["options"] == {"n_ctx": 2048}
    tested = runner.invoke(app, ["engines", "test", "small", "--json"])
    assert tested.exit_code == 0, tested.output
    result = json.loads(tested.output)
    assert result["parses"] and result["grammar"] and result["output_tokens"] > 0 and result["latency_s"] > 0
    dead = runner.invoke(app, ["engines", "test", f"llamacpp:{tmp_path}/none.gguf"])
    assert dead.exit_code == 1 and "not found" in dead.output


def test_structure_by_stored_id(tmp_path) -> None:
    """A version saved by the structure editor is found by its id prefix; unknown ids are one-line errors."""
    from automem.memory.structure import StructureError, load_builtin
    from automem.runs.run import find_structure
    from automem.store import Store

    store = Store(tmp_path / "a.db")
    child = load_builtin("crafter-v0").derive(author="human", description="mine")
    sid = store.save_structure(child)
    assert find_structure(sid[:8], store).id == sid
    assert find_structure("crafter-v0", store).name == "crafter-v0"
    with pytest.raises(StructureError, match="no stored structure|not a structure"):
        find_structure("abcd1234", store)
    store.close()
    bad = runner.invoke(app, ["run", "crafter", "--structure", "abcd1234", "--db", str(tmp_path / "a.db")])
    assert bad.exit_code == 2 and "abcd1234" in bad.output


def test_play_and_replay_reject_bad_input(tmp_path) -> None:
    db = str(tmp_path / "a.db")
    assert runner.invoke(app, ["play", "chess", "--db", db]).exit_code == 2
    bad = runner.invoke(app, ["play", "nethack", "--structure", "crafter-v0", "--db", db])
    assert bad.exit_code == 2 and "crafter" in bad.output
    missing = runner.invoke(app, ["replay", "42", "--db", db])
    assert missing.exit_code == 2 and "no episode 42" in missing.output


def test_replay_compare_opens_or_refuses(store, compared, recorded, monkeypatch) -> None:
    import automem.cli.interactive as cli

    opened = []
    monkeypatch.setattr(cli, "_open_tui", lambda ctx, mode: opened.append((ctx, mode)))
    db = str(store.path)
    ids = [str(e) for e in compared]
    result = runner.invoke(app, ["replay", "--compare", *ids, "--db", db])
    assert result.exit_code == 0, result.output
    assert opened[-1][1] == "replay" and opened[-1][0].extra == {"compare": list(compared)}
    result = runner.invoke(app, ["replay", ids[0], "--db", db])
    assert result.exit_code == 0 and opened[-1][0].extra == {"episode": compared[0]}
    nethack = str(recorded(store, "nethack-seed7"))
    for args, needle in [
        ([ids[0]], "2 or 3 episodes, got 1"),
        ([*ids, nethack], "2 or 3 episodes, got 4"),
        ([ids[0], nethack], "same game, task and seed"),
        ([ids[0], ids[0]], "given twice"),
        ([ids[0], "99"], "no episode 99"),
    ]:
        bad = runner.invoke(app, ["replay", "--compare", *args, "--db", db])
        assert bad.exit_code == 2 and needle in bad.output, (args, bad.output)
    two = runner.invoke(app, ["replay", *ids[:2], "--db", db])
    assert two.exit_code == 2 and "need --compare" in two.output
    assert len(opened) == 2


def test_no_command_opens_the_play_screen(tmp_path, monkeypatch) -> None:
    """`automem` alone is the README's main command: the TUI playing Crafter with the bundled model."""
    import automem.cli.interactive as cli

    opened = []
    monkeypatch.setattr(cli, "_open_tui", lambda ctx, mode: opened.append((ctx, mode)))
    monkeypatch.setenv("AUTOMEM_DB", str(tmp_path / "a.db"))
    result = runner.invoke(app, [])
    assert result.exit_code == 0, result.output
    ((ctx, mode),) = opened
    assert mode == "play" and ctx.game == "crafter" and ctx.engine_spec == "llamacpp" and ctx.structure is None
    assert ctx.store.path == tmp_path / "a.db"
    result = runner.invoke(app, ["play", "nethack", "--seed", "3", "--paused", "--db", str(tmp_path / "b.db")])
    assert result.exit_code == 0, result.output
    ctx, mode = opened[-1]
    assert (ctx.game, ctx.seed, ctx.start_paused) == ("nethack", 3, True)


@pytest.mark.model
def test_serve_refuses_what_it_cannot_serve(tmp_path, monkeypatch) -> None:
    wrong = runner.invoke(app, ["serve", "openai:http://127.0.0.1:1/v1"])
    assert wrong.exit_code == 2 and "serves llama.cpp models" in wrong.output
    missing = runner.invoke(app, ["serve", f"llamacpp:{tmp_path}/none.gguf", "--port", "0"])
    assert missing.exit_code == 1 and "model file not found" in missing.output
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    nokey = runner.invoke(app, ["serve", "--api-key-env", "NO_SUCH_KEY_VAR", "--port", "0"])
    assert nokey.exit_code == 1 and "NO_SUCH_KEY_VAR" in nokey.output
    bad = runner.invoke(app, ["serve", "--parallel", "0"])
    assert bad.exit_code == 2


def test_serve_with_a_key_refuses_requests_without_it(monkeypatch) -> None:
    """--api-key-env: the server answers 401 without the key and serves with it."""
    import os
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    from automem.engines.serve import free_port

    port = free_port()
    env = {**os.environ, "SERVE_TEST_KEY": "k-123"}
    cmd = [sys.executable, "-m", "automem", "serve", "--port", str(port), "--api-key-env", "SERVE_TEST_KEY"]
    proc = subprocess.Popen([*cmd, "--parallel", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/v1/models", timeout=5)
        assert refused.value.code == 401
        request = urllib.request.Request(f"{base}/v1/models", headers={"Authorization": "Bearer k-123"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert b"SmolLM2" in answer.read()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode == 0  # SIGTERM stops it cleanly
