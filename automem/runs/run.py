"""A run: several episodes of one game with one structure and engine, recorded under one name."""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from automem.engines.base import Engine
from automem.games import make_game
from automem.games.base import Game, GameError
from automem.memory.structure import Structure, StructureError, resolve_structure
from automem.runs.episode import EpisodeRunner, EpisodeSummary, StepEvent
from automem.store.db import Store


@dataclass
class RunConfig:
    game: str
    task: str | None
    seeds: list[int]
    structure: Structure
    engine_spec: str
    max_steps: int = 100
    temperature: float = 0.7
    run_name: str | None = None
    memory_engine_spec: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def default_run_name(game: str, structure: str) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return f"{game}-{structure}-{stamp}"


def is_plain_name(text: str) -> bool:
    """A dataset or training-run name that is also a folder name: letters, digits, _ . - (at most 64)."""
    return re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", text) is not None


def safe_name(text: str) -> str:
    """A run or task name as one file-name component."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def memory_root(store: Store) -> Path:
    return store.path.parent / "memory"


def looks_like_id(spec: str) -> bool:
    return len(spec) >= 4 and all(c in "0123456789abcdef" for c in spec.lower())


def find_structure(spec: str, store: Store) -> Structure:
    """A built-in name, a YAML file, or the id (prefix) of a version stored in ``store`` (the
    structure editor saves there)."""
    from automem.store.db import StoreError

    try:
        return resolve_structure(spec)
    except StructureError:
        if not looks_like_id(spec):
            raise
    try:
        return store.load_structure(spec)
    except StoreError as exc:
        raise StructureError(str(exc)) from None


def check_structure_fits(structure: Structure, game: str) -> None:
    if structure.game not in (None, game):
        raise StructureError(f"structure {structure.name!r} is for {structure.game}, not {game}")


def execute_run(
    config: RunConfig,
    store: Store,
    engine: Engine,
    *,
    game: Game | None = None,
    memory_engine: Engine | None = None,
    on_episode_start: Callable[[int, int], None] | None = None,
    on_step: Callable[[StepEvent], None] | None = None,
    on_episode_end: Callable[[EpisodeSummary], None] | None = None,
) -> tuple[int, list[EpisodeSummary]]:
    """Play every seed in order; returns the run id and the episode summaries."""
    check_structure_fits(config.structure, config.game)
    if config.max_steps < 1:
        raise GameError("--steps must be at least 1")
    name = config.run_name or default_run_name(config.game, config.structure.name)
    if store.run_by_name(name) is not None:
        raise GameError(f"a run named {name!r} already exists in {store.path}")
    game = game or make_game(config.game, config.task)
    structure_id = store.save_structure(config.structure)
    run_id = store.create_run(
        name=name,
        game=config.game,
        task=game.task,
        structure_id=structure_id,
        engine=config.engine_spec,
        memory_engine=config.memory_engine_spec,
        config={
            "seeds": config.seeds,
            "max_steps": config.max_steps,
            "temperature": config.temperature,
            "model": engine.model,
            **config.extra,
        },
    )
    folder_root = memory_root(store) / safe_name(name)
    summaries: list[EpisodeSummary] = []
    status = "interrupted"
    try:
        for seed in config.seeds:
            scope = config.structure.context.scope
            runner = EpisodeRunner.start(
                store=store,
                run_id=run_id,
                game=game,
                structure=config.structure,
                engine=engine,
                seed=seed,
                memory_dir=folder_root / ("shared" if scope == "run" else f"seed{seed}"),
                max_steps=config.max_steps,
                temperature=config.temperature,
                memory_engine=memory_engine,
            )
            if on_episode_start is not None:
                on_episode_start(runner.episode_id, seed)
            try:
                summary = runner.run(on_step)
            except Exception:  # recorded as failed with its reason by the runner; the next seed plays
                summary = runner.summary
            summaries.append(summary)
            if on_episode_end is not None:
                on_episode_end(summary)
        status = "failed" if any(s.status == "failed" for s in summaries) else "finished"
    finally:
        store.finish_run(run_id, status)
        game.close()
    return run_id, summaries
