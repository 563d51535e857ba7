"""What the front ends start as jobs: the TUI forms' fields, checked the way the CLI would check
them, turned into ``eval``, ``optimize``, ``mine`` and ``finetune`` arguments for start_job.

A form's mistake is a JobError naming the field, raised before any process starts.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from automem.finetune.train import BACKENDS
from automem.jobs.supervisor import JobError
from automem.procs import MAX_WORKERS
from automem.store.db import Store, default_db_path


def held_out_warnings(store: Store, argv: list[str]) -> list[str]:
    """For an eval job's arguments: a warning per engine that plays an adapter whose dataset was
    mined from the seeds it is about to play."""
    from automem.finetune.ledger import seed_warnings
    from automem.runs.seeds import parse_seeds

    if not argv or argv[0] != "eval":
        return []
    values = {flag: argv[i + 1] for i, flag in enumerate(argv[:-1]) if flag.startswith("--")}
    try:
        seeds = parse_seeds(values.get("--seeds", ""))
    except ValueError:
        return []
    return seed_warnings(store, [values.get("--engine"), values.get("--memory-engine")], seeds)


def eval_job_argv(
    *,
    game: str,
    seeds: str,
    tasks: str = "",
    episodes_per_task: str = "",
    max_steps: str = "20",
    workers: str = "1",
    structure: str = "",
    engine: str = "llamacpp",
    run_name: str = "",
    db: Path | None = None,
) -> list[str]:
    """Check a form's fields (as typed) and build the ``eval`` arguments; JobError says what is wrong."""
    _check_game_and_seeds(game, seeds)
    structure = _checked_structure(structure, game, db)
    engine = _checked_engine(engine)
    argv = ["eval", game, "--seeds", seeds.strip(), *_option("--tasks", tasks)]
    if episodes_per_task.strip():
        argv += ["--episodes-per-task", _whole_number(episodes_per_task, "episodes per task")]
    argv += ["--steps", _whole_number(max_steps, "max steps")]
    argv += ["--workers", _whole_number(workers, "workers", most=MAX_WORKERS)]
    argv += [*_option("--structure", structure), "--engine", engine]
    return argv + _option("--run-name", run_name) + _db_option(db)


def optimize_job_argv(
    *,
    game: str,
    seeds: str,
    from_structure: str = "",
    agent_engine: str = "llamacpp",
    critic: str = "heuristic",
    tasks: str = "",
    iterations: str = "3",
    candidates: str = "2",
    max_steps: str = "20",
    workers: str = "1",
    run_name: str = "",
    db: Path | None = None,
) -> list[str]:
    """Check a form's fields (as typed) and build the ``optimize`` (loop 1) arguments; JobError says what is wrong."""
    _check_game_and_seeds(game, seeds)
    from_structure = _checked_structure(from_structure, game, db)
    agent_engine = _checked_engine(agent_engine, "agent engine")
    critic = _checked_critic(critic)
    argv = ["optimize", game, "--seeds", seeds.strip(), *_option("--tasks", tasks)]
    argv += ["--iterations", _whole_number(iterations, "iterations")]
    argv += ["--candidates", _whole_number(candidates, "candidates")]
    argv += ["--steps", _whole_number(max_steps, "max steps")]
    argv += ["--workers", _whole_number(workers, "workers", most=MAX_WORKERS)]
    argv += [*_option("--from", from_structure), "--agent-engine", agent_engine, "--critic", critic]
    return argv + _option("--run-name", run_name) + _db_option(db)


def mine_job_argv(*, runs: str, out: str, min_score: str = "2", judge: str = "", db: Path | None = None) -> list[str]:
    """Check a form's fields and build the ``mine`` (loop 2's dataset) arguments; JobError says what is wrong."""
    names = [r.strip() for r in runs.replace(",", " ").split() if r.strip()]
    if not names:
        raise JobError("runs: name at least one run to mine (comma-separate several)")
    out = _plain_name(out, "dataset name")
    with _store_of(db) as store:
        missing = [n for n in names if store is None or store.run_by_name(n) is None]
        if missing:
            raise JobError(f"runs: no run named {', '.join(map(repr, missing))}")
        if store.dataset_exists(out):
            raise JobError(f"dataset name: {out!r} exists; choose another")
    argv = ["mine", *(a for n in names for a in ("--runs", n)), "--out", out]
    argv += ["--min-score", _number(min_score, "min score", least=0.0)]
    if judge.strip():
        argv += ["--judge", _checked_engine(judge, "judge")]
    return argv + _db_option(db)


def finetune_job_argv(
    *,
    dataset: str,
    out: str,
    base: str = "bundled",
    backend: str = "auto",
    lora_r: str = "8",
    lora_alpha: str = "16",
    epochs: str = "1",
    lr: str = "2e-4",
    max_steps: str = "",
    db: Path | None = None,
) -> list[str]:
    """Check a form's fields and build the ``finetune`` (loop 2's trainer) arguments; JobError says what is wrong."""
    dataset = dataset.strip()
    out = _plain_name(out, "name")
    with _store_of(db) as store:
        if store is None or not store.dataset_exists(dataset):
            raise JobError(f"dataset: no dataset named {dataset!r} (make one with a mine job)")
        if store.training_run_exists(out):
            raise JobError(
                f"name: training run {out!r} exists; choose another (resume it with automem finetune --resume)"
            )
    base = base.strip() or "bundled"
    if base not in ("bundled", "llamacpp"):
        from automem.engines import EngineError
        from automem.engines.transformers_engine import resolve_model

        try:
            resolve_model(base)
        except EngineError as exc:
            raise JobError(f"base: {exc}") from None
        base = str(Path(base).expanduser().resolve())
    backend = backend.strip() or "auto"
    if backend not in BACKENDS:
        raise JobError(f"backend must be {', '.join(BACKENDS)}, not {backend!r}")
    argv = ["finetune", "--dataset", dataset, "--out", out, "--base", base, "--backend", backend]
    argv += ["--lora-r", _whole_number(lora_r, "LoRA r"), "--lora-alpha", _whole_number(lora_alpha, "LoRA alpha")]
    argv += ["--epochs", _number(epochs, "epochs", least=0.01), "--lr", _number(lr, "learning rate", least=1e-7)]
    if max_steps.strip():
        argv += ["--train-steps", _whole_number(max_steps, "training steps")]
    return argv + _db_option(db)


@contextmanager
def _store_of(db: Path | None) -> Iterator[Store | None]:
    """The form's database, opened for a check and closed after; None when it does not exist yet."""
    path = db if db is not None else default_db_path()
    if not path.exists():
        yield None
        return
    store = Store(path)
    try:
        yield store
    finally:
        store.close()


def _plain_name(text: str, label: str) -> str:
    from automem.runs.run import is_plain_name

    name = text.strip()
    if not is_plain_name(name):
        raise JobError(f"{label} must be a plain name (letters, digits, _ . -), not {name!r}")
    return name


def _number(text: str, label: str, *, least: float) -> str:
    value = text.strip()
    try:
        number = float(value)
    except ValueError:
        raise JobError(f"{label} must be a number, not {value!r}") from None
    if not number >= least:  # also refuses nan
        raise JobError(f"{label} must be at least {least:g}, not {value!r}")
    return value


def _check_game_and_seeds(game: str, seeds: str) -> None:
    from automem.games import GameError, get_game_class
    from automem.runs.seeds import SeedError, parse_seeds

    try:
        get_game_class(game)
        parse_seeds(seeds)
    except (GameError, SeedError, ValueError) as exc:
        raise JobError(str(exc)) from None


def _checked_structure(spec: str, game: str, db: Path | None) -> str:
    """``spec`` stripped, once it names a structure for ``game``: a built-in, a YAML file, or the id
    (prefix) of a version stored in ``db`` (the default database when None); "" for the game's default."""
    from automem.memory.structure import StructureError, resolve_structure
    from automem.runs.run import check_structure_fits, find_structure, looks_like_id
    from automem.store.db import StoreError

    spec = spec.strip()
    if not spec:
        return ""
    try:
        if not looks_like_id(spec):
            structure = resolve_structure(spec)
        else:
            path = db if db is not None else default_db_path()
            if not path.exists():  # no database yet: only a built-in or a file can match
                try:
                    structure = resolve_structure(spec)
                except StructureError:
                    raise StructureError(f"no stored structure with id {spec!r} ({path} does not exist)") from None
            else:
                store = Store(path)
                try:
                    structure = find_structure(spec, store)
                finally:
                    store.close()
        check_structure_fits(structure, game)
    except (StructureError, StoreError, ValueError) as exc:
        raise JobError(str(exc)) from None
    return spec


def _checked_engine(text: str, label: str = "") -> str:
    """An engine spec or a profile name from the user config (stripped; "" is llamacpp); ``label``
    names the field in the message when the form has more than one engine."""
    from automem.engines import EngineError, engine_names, resolve_engine_spec, split_spec

    name_or_spec = text.strip() or "llamacpp"
    try:
        spec, _ = resolve_engine_spec(name_or_spec)
        if split_spec(spec)[0] not in engine_names():
            raise EngineError(f"unknown engine {name_or_spec!r}; known: {', '.join(engine_names())}")
    except (EngineError, ValueError) as exc:
        raise JobError(f"{label}: {exc}" if label else str(exc)) from None
    return name_or_spec


def _checked_critic(text: str) -> str:
    """``heuristic``, ``command:PROGRAM ARGS`` with a program found on PATH, or an engine spec or
    profile, optionally after ``whole:`` (stripped; "" is heuristic)."""
    import shutil

    critic = text.strip() or "heuristic"
    if critic == "heuristic":
        return critic
    if critic.startswith("command:"):
        try:
            words = shlex.split(critic.removeprefix("command:"))
        except ValueError as exc:
            raise JobError(f"critic: cannot split the command: {exc}") from None
        if not words:
            raise JobError("critic: command: needs a program, as in command:PROGRAM ARGS")
        if shutil.which(words[0]) is None:
            raise JobError(f"critic: program {words[0]!r} not found (or not executable)")
        return critic
    engine = critic.removeprefix("whole:")
    if not engine.strip():
        raise JobError("critic: whole: needs an engine spec or profile, as in whole:SPEC")
    _checked_engine(engine, "critic")
    return critic


def _whole_number(text: str, label: str, *, most: int | None = None) -> str:
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or int(value) < 1 or (most is not None and int(value) > most):
        bounds = f"from 1 to {most}" if most is not None else "of at least 1"
        raise JobError(f"{label} must be a whole number {bounds}, not {value!r}")
    return str(int(value))


def _option(flag: str, text: str) -> list[str]:
    """``[flag, text]`` for a field that was filled in, ``[]`` for one left empty."""
    return [flag, text.strip()] if text.strip() else []


def _db_option(db: Path | None) -> list[str]:
    return ["--db", str(db)] if db is not None else []


def pipeline_job_argv(*, file: str, db: Path | None = None) -> list[str]:
    """Check a pipeline file (or a shipped example's name) and build the ``pipeline`` arguments."""
    from automem.jobs.pipeline_spec import PipelineError, example_pipelines, load_pipeline

    text = file.strip()
    if not text:
        raise JobError(f"file: a pipeline YAML file, or one of {', '.join(sorted(example_pipelines()))}")
    examples = example_pipelines()
    path = examples[text] if text in examples and not Path(text).exists() else Path(text).expanduser().resolve()
    try:
        load_pipeline(path)
    except PipelineError as exc:
        raise JobError(f"file: {exc}") from None
    return ["pipeline", str(path), *_db_option(db)]
