"""Re-simulation (`verify`) and exports (`export --jsonl/--ttyrec`) of recorded episodes of all
three games, with NLE's own ttyrec reader reading back what was written."""

from __future__ import annotations

import bz2
import json
import struct

import numpy as np
import pytest
from typer.testing import CliRunner

from automem.cli import app
from automem.runs.export import jsonl_records, write_ttyrec
from automem.runs.verify import VerifyError, resimulate
from automem.store.db import Store

RECORDED = ("crafter-seed7", "minihack-seed3", "nethack-seed7")


@pytest.fixture
def db(tmp_path, recorded):
    """A store holding the three recorded episodes; returns (path, {name: episode id})."""
    path = tmp_path / "runs.db"
    with Store(path) as store:
        ids = {name: recorded(store, name) for name in RECORDED}
    return str(path), ids


def test_every_recorded_episode_replays_from_its_seed_with_no_difference(db):
    path, ids = db
    result = CliRunner().invoke(app, ["verify", *map(str, ids.values()), "--json", "--db", path])
    assert result.exit_code == 0, result.output
    reports = json.loads(result.output)
    assert [r["game"] for r in reports] == ["crafter", "minihack", "nethack"]
    assert all(r["ok"] and r["divergence"] is None for r in reports)
    assert all(r["replayed_steps"] == r["recorded_steps"] > 0 for r in reports)


def test_a_tampered_record_is_caught_at_its_step(db):
    path, ids = db
    episode = ids["crafter-seed7"]
    with Store(path) as store:
        steps = store.steps(episode)
        # another action at step 4: step 5's observation can no longer be what was recorded
        other = "noop" if steps[4]["action"] != "noop" else "move_left"
        store.db["steps"].update(steps[4]["id"], {"action": other})
        store.db["steps"].update(steps[8]["id"], {"observation": steps[8]["observation"] + "\nextra line"})
        verification = resimulate(store, episode)
    assert not verification.ok and verification.replayed_steps <= 8
    assert verification.divergence is not None and 4 <= verification.divergence.step <= 8
    result = CliRunner().invoke(app, ["verify", str(episode), "--db", path])
    assert result.exit_code == 1 and f"step {verification.divergence.step}: the" in result.output
    with Store(path) as store:
        store.db["steps"].update(store.steps(ids["nethack-seed7"])[2]["id"], {"reward": 99.0})
        report = resimulate(store, ids["nethack-seed7"])
    assert report.divergence is not None and report.divergence.what == "reward" and report.divergence.step == 2
    assert "recorded 99, replayed -0.01" in report.describe()


def test_jsonl_has_balrogs_fields_for_every_step(db, tmp_path):
    path, ids = db
    out = tmp_path / "ep.jsonl"
    result = CliRunner().invoke(app, ["export", str(ids["minihack-seed3"]), "--jsonl", str(out), "--db", path])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    with Store(path) as store:
        steps = store.steps(ids["minihack-seed3"])
        assert lines == list(jsonl_records(store, ids["minihack-seed3"]))
    assert len(lines) == len(steps) == 9 and f"wrote {len(steps)} steps" in result.output
    assert list(lines[0])[:6] == ["step", "action", "reasoning", "observation", "reward", "done"]
    assert [r["action"] for r in lines] == [s["action"] for s in steps]
    assert lines[-1]["done"] and lines[-1]["achievements"] == ["success"]
    assert all(r["reasoning"].startswith(("LOG:", "PLAN:", "ACT:")) for r in lines if r["action_source"] == "model")
    with Store(path) as store:  # an episode with memory operations: each is under its step
        crafter = list(jsonl_records(store, ids["crafter-seed7"]))
        ops = store.memory_ops_of(ids["crafter-seed7"])
    assert ops and sum(len(r["memory_ops"]) for r in crafter) == len(ops)
    assert {(op["step"], op["path"]) for op in ops} == {
        (r["step"], o["path"]) for r in crafter for o in r["memory_ops"]
    }


def _screens(path: str) -> list[list[str]]:
    """Every screen NLE's own ttyrec converter reads from a classic, bz2-compressed ttyrec."""
    from nle import _pyconverter

    converter = _pyconverter.Converter(24, 80, 1)
    converter.load_ttyrec(path)
    screens: list[list[str]] = []
    while True:
        chunk = 16
        chars = np.zeros((chunk, 24, 80), dtype=np.uint8)
        colors = np.zeros((chunk, 24, 80), dtype=np.int8)
        cursors = np.zeros((chunk, 2), dtype=np.int16)
        times = np.zeros(chunk, dtype=np.int64)
        inputs = np.zeros(chunk, dtype=np.uint8)
        scores = np.zeros(chunk, dtype=np.int32)
        remaining = converter.convert(chars, colors, cursors, times, inputs, scores)
        filled = chunk - remaining
        screens += [[bytes(row).decode("latin-1") for row in frame] for frame in chars[:filled]]
        if remaining:
            return screens


def _frames(data: bytes, header: struct.Struct) -> list[tuple[int, ...]]:
    offset, frames = 0, []
    while offset < len(data):
        fields = header.unpack_from(data, offset)
        offset += header.size + fields[2]
        frames.append(fields)
    assert offset == len(data)
    return frames


@pytest.mark.parametrize("name", ["minihack-seed3", "nethack-seed7"])
def test_a_ttyrec_shows_every_recorded_screen_to_nles_reader(db, tmp_path, name):
    path, ids = db
    out = tmp_path / f"{name}.ttyrec.bz2"
    result = CliRunner().invoke(app, ["export", str(ids[name]), "--ttyrec", str(out), "--db", path])
    assert result.exit_code == 0, result.output
    assert "with 0 differences" in result.output
    screens = _screens(str(out))
    assert len(screens) > 3
    with Store(path) as store:
        recorded = [json.loads(s["frame"])["rows"] for s in store.steps(ids[name])]
    # the screen the agent saw at each step is a screen of the recording (NetHack drew it itself)
    for step, rows in enumerate(recorded):
        assert any(screen == rows for screen in screens), f"step {step}'s screen is not in the ttyrec"
    # the classic format, paced by key presses: time never runs backwards
    frames = _frames(bz2.decompress(out.read_bytes()), struct.Struct("<iii"))
    clock = [sec + usec / 1e6 for sec, usec, _ in frames]
    assert clock == sorted(clock) and clock[-1] > 0


def test_ttyrec_versions_and_refusals(db, tmp_path):
    path, ids = db
    with Store(path) as store:
        plain = write_ttyrec(store, ids["minihack-seed3"], tmp_path / "mh.ttyrec")
        full = write_ttyrec(store, ids["minihack-seed3"], tmp_path / "mh.ttyrec3", version=3)
        frames = _frames((tmp_path / "mh.ttyrec").read_bytes(), struct.Struct("<iii"))
        assert len(frames) == plain.frames
        channels = [f[3] for f in _frames((tmp_path / "mh.ttyrec3").read_bytes(), struct.Struct("<iiiB"))]
        assert channels.count(0) == plain.frames and 1 in channels and full.frames == len(channels)
        with pytest.raises(VerifyError, match="version 1"):
            write_ttyrec(store, ids["minihack-seed3"], tmp_path / "x", version=2)
    runner = CliRunner()
    crafter = runner.invoke(app, ["export", str(ids["crafter-seed7"]), "--ttyrec", str(tmp_path / "c"), "--db", path])
    assert crafter.exit_code == 2 and "crafter does not record ttyrecs" in crafter.output
    nothing = runner.invoke(app, ["export", str(ids["crafter-seed7"]), "--db", path])
    assert nothing.exit_code == 2 and "--jsonl FILE, --ttyrec FILE" in nothing.output
    missing = runner.invoke(app, ["verify", "999", "--db", path])
    assert missing.exit_code == 2 and "no episode 999" in missing.output
    with Store(path) as store:
        store.db["steps"].update(store.steps(ids["minihack-seed3"])[1]["id"], {"action": "north"})
    differs = runner.invoke(app, ["export", str(ids["minihack-seed3"]), "--ttyrec", str(tmp_path / "d"), "--db", path])
    assert differs.exit_code == 2 and "the replay is not the recorded episode" in differs.output
