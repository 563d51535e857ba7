"""``automem doctor``: can this machine run automem, and if not, what to do.

Each check is one line with a verdict. The checks that run native code (the model, the games,
the optional GPU libraries) run in a child process (``python -m automem.doctor probe ...``), so a
segmentation fault is reported with its signal instead of killing the doctor.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

OK, WARN, FAIL = "ok", "warn", "FAIL"
#: optional libraries and the extra that brings each
EXTRAS = {
    "transformers": "transformers",
    "peft": "transformers",
    "trl": "transformers",
    "unsloth": "unsloth",
    "vllm": "vllm",
    "ray": "ray",
}
PROBE_TIMEOUT_S = 300.0


@dataclass
class Check:
    name: str
    verdict: str  # ok | warn | FAIL
    detail: str
    #: what to do about a FAIL or a warn
    fix: str = ""
    #: a FAIL here means the main job (the TUI playing with the bundled model) cannot run
    essential: bool = False
    seconds: float = 0.0


@dataclass
class Probe:
    ok: bool
    detail: str


# -- probes: run in a child process -----------------------------------------------------------
def _probe_model() -> str:
    from automem.engines.bundled import bundled_model_path
    from automem.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(bundled_model_path(), n_ctx=1024, n_threads=min(2, os.cpu_count() or 1))
    try:
        out = engine.complete(
            [{"role": "user", "content": "Answer with one game action: noop or move_left."}],
            grammar='root ::= "ACT " ("noop" | "move_left")',
            max_tokens=8,
            temperature=0.0,
            seed=0,
        )
    finally:
        engine.close()
    if not out.text.startswith("ACT "):
        raise RuntimeError(f"the grammar did not hold: {out.text!r}")
    return (
        f"{engine.model} answered {out.text!r} ({out.input_tokens} in / {out.output_tokens} out, {out.latency_s:.2f} s)"
    )


def _probe_game(name: str) -> str:
    from automem.games import make_game

    game = make_game(name)
    try:
        game.reset(0)
        action = game.action_names()[0] if hasattr(game, "action_names") else game.actions()[0].name
        result = game.step(action)
        return f"{game.task}: reset, stepped {action!r} (reward {result.reward:g})"
    finally:
        close = getattr(game, "close", None)
        if close is not None:
            close()


def _probe_import(module: str) -> str:
    mod = __import__(module)
    version = getattr(mod, "__version__", "?")
    if module == "torch":
        cuda = mod.cuda.is_available()
        name = mod.cuda.get_device_name(0) if cuda else "no CUDA GPU visible"
        return f"torch {version}; {name}"
    return f"{module} {version}"


PROBES: dict[str, Callable[..., str]] = {"model": _probe_model, "game": _probe_game, "import": _probe_import}


def _probe_main(argv: list[str]) -> int:
    kind, *args = argv
    try:
        detail = PROBES[kind](*args)
    except BaseException as exc:  # noqa: BLE001 - every failure is the probe's answer
        print(json.dumps({"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:400]}))
        return 1
    print(json.dumps({"ok": True, "detail": detail}))
    return 0


def run_probe(kind: str, *args: str, timeout_s: float = PROBE_TIMEOUT_S) -> Probe:
    """One probe in a child process; a native crash comes back as its signal."""
    cmd = [sys.executable, "-m", "automem.doctor", "probe", kind, *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return Probe(False, f"no answer within {timeout_s:g} s")
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        return Probe(False, f"the child process died of {sig} (a crash in native code)")
    for line in reversed(proc.stdout.splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "ok" in data:
            return Probe(bool(data["ok"]), str(data["detail"]))
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return Probe(False, f"exit code {proc.returncode}: {tail[0][:300]}")


# -- the checks -------------------------------------------------------------------------------
def check_python() -> Check:
    version = sys.version_info
    text = f"Python {platform.python_version()} on {platform.system()} {platform.machine()}"
    if not ((3, 10) <= version[:2] < (3, 14)):
        return Check("python", FAIL, text, "use Python 3.10-3.13", essential=True)
    if platform.system() != "Linux":
        return Check("python", FAIL, text, "NetHack (nle) ships wheels for Linux only: use Linux", essential=True)
    return Check("python", OK, text, essential=True)


def check_cpu() -> Check:
    from automem.engines.cpu import cpu_info

    info = cpu_info()
    if info.has_amx:
        action = "AMX present: llama.cpp's AMX repacking (a crash at the first inference) is switched off"
    else:
        action = "no AMX: nothing to switch off"
    if platform.machine() in ("x86_64", "AMD64") and "avx2" not in info.flags:
        return Check("cpu", WARN, f"{info.summary()}; {action}", "without AVX2 llama.cpp runs several times slower")
    return Check("cpu", OK, f"{info.summary()}; {action}")


def check_engine() -> Check:
    try:
        import xllamacpp

        version = getattr(xllamacpp, "__version__", "?")
    except ImportError as exc:
        return Check("engine", FAIL, f"xllamacpp does not import: {exc}", "pip install -e .", essential=True)
    info = xllamacpp.get_system_info()
    kernels = [k for k in ("AVX2", "AVX512", "AMX_INT8") if f"{k} = 1" in info]
    built = f"CPU kernels {', '.join(kernels) or 'baseline'}; {'no ' if 'AMX' not in info else ''}AMX code"
    return Check("engine", OK, f"xllamacpp {version} (llama.cpp; {built})")


def check_model() -> Check:
    probe = run_probe("model")
    if probe.ok:
        return Check("model", OK, probe.detail, essential=True)
    return Check(
        "model", FAIL, f"the bundled model did not generate: {probe.detail}",
        "reinstall with `pip install -e .`; on a crash, report the cpu line above", essential=True,
    )  # fmt: skip


def check_game(name: str) -> Check:
    probe = run_probe("game", name)
    if probe.ok:
        return Check(f"game {name}", OK, probe.detail, essential=name == "crafter")
    return Check(f"game {name}", FAIL, probe.detail, f"reinstall {name}'s package", essential=name == "crafter")


def check_store(db: Path | None) -> Check:
    from automem.store import Store, default_db_path

    path = Path(db or default_db_path()).expanduser()
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".automem-doctor-"):
            pass
    except OSError as exc:
        return Check("database", FAIL, f"{folder} is not writable: {exc}", "pass --db PATH or set AUTOMEM_DB", True)
    if not path.exists():
        return Check("database", OK, f"{path} (new: created at the first run)", essential=True)
    try:
        pending = Store.pending_migrations(path)
    except Exception as exc:  # noqa: BLE001 - a damaged file is the answer
        return Check("database", FAIL, f"{path} cannot be read: {exc}", "move it away or pass --db", True)
    if pending:
        return Check("database", OK, f"{path}: {len(pending)} migrations to apply at the next start", essential=True)
    return Check("database", OK, f"{path}: writable, schema current", essential=True)


def check_extras() -> list[Check]:
    checks = []
    for module, extra in EXTRAS.items():
        if importlib.util.find_spec(module) is None:
            checks.append(Check(f"extra {module}", OK, f"not installed (pip install -e '.[{extra}]' to use it)"))
            continue
        probe = run_probe("import", module)
        verdict = OK if probe.ok else WARN
        fix = "" if probe.ok else ("unsloth needs a CUDA GPU" if module == "unsloth" else f"reinstall '.[{extra}]'")
        checks.append(Check(f"extra {module}", verdict, probe.detail, fix))
    if importlib.util.find_spec("torch") is not None:
        probe = run_probe("import", "torch")
        checks.append(Check("gpu", OK if probe.ok else WARN, probe.detail))
    else:
        smi = "nvidia-smi found" if shutil.which("nvidia-smi") else "no nvidia-smi"
        checks.append(Check("gpu", OK, f"torch not installed; {smi}"))
    return checks


def check_profiles() -> Check:
    from automem.engines import EngineError
    from automem.engines.profiles import config_path, list_profiles

    path = config_path()
    try:
        profiles = list_profiles()
    except EngineError as exc:
        return Check("profiles", FAIL, str(exc), f"fix {path}")
    if not path.exists():
        return Check("profiles", OK, f"no config file at {path} (optional)")
    return Check("profiles", OK, f"{len(profiles)} engine profiles parse in {path}")


def run_checks(db: Path | None = None, *, games: tuple[str, ...] | None = None, extras: bool = True,
               on_check: Callable[[Check], None] | None = None) -> list[Check]:  # fmt: skip
    from automem.games import game_names

    steps: list[Callable[[], Check | list[Check]]] = [check_python, check_cpu, check_engine, check_model]
    steps += [lambda name=name: check_game(name) for name in (games if games is not None else game_names())]
    steps += [lambda: check_store(db), check_profiles]
    if extras:
        steps.append(check_extras)
    out: list[Check] = []
    for step in steps:
        t0 = time.perf_counter()
        result = step()
        for check in result if isinstance(result, list) else [result]:
            check.seconds = round(time.perf_counter() - t0, 2)
            out.append(check)
            if on_check is not None:
                on_check(check)
    return out


def main_job_can_run(checks: list[Check]) -> bool:
    return not any(c.essential and c.verdict == FAIL for c in checks)


def as_json(checks: list[Check]) -> str:
    return json.dumps({"ok": main_job_can_run(checks), "checks": [asdict(c) for c in checks]}, indent=2)


if __name__ == "__main__" and sys.argv[1:2] == ["probe"]:
    sys.exit(_probe_main(sys.argv[2:]))
