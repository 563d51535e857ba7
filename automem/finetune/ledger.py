"""The ledger of loop-2 recipes: dataset + training configuration -> what the specialist did in play.

Every fine-tuning run is a recipe: the mined dataset (its source runs and selection settings) and
the training configuration, with its losses. Its evidence is the runs that played with its adapter
(as ``--memory-engine`` or ``--engine``, any engine kind), set against the runs its dataset was
mined from, with the memory-quality figures of ``automem compare``. So the next recipe is chosen
from what the earlier ones did, not from their losses alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from automem.finetune.compare import Quality, common_finished_episodes, quality
from automem.finetune.mine import MiningError, dataset_pairs, recorded_pairs
from automem.store.db import Store

# the configuration fields a reader compares recipes by (the rest stays in the JSON)
RECIPE_KEYS = ("backend", "lora_r", "lora_alpha", "target_modules", "epochs", "lr", "max_length", "max_steps")
SELECTION_KEYS = ("min_score", "k", "judge", "min_examples", "val_fraction")


@dataclass
class Recipe:
    name: str
    status: str
    created_at: str
    dataset: str
    dataset_runs: list[str]
    selection: dict[str, Any]
    examples: dict[str, int]  # candidates, kept, train, val
    base: str
    config: dict[str, Any]
    steps: int
    train_loss: float | None
    eval_loss: float | None
    train_seconds: float | None
    adapter: str
    played: list[Quality] = field(default_factory=list)  # runs that used the adapter
    mined: list[Quality] = field(default_factory=list)  # the runs the dataset came from
    # with same_seeds: the (task, seed) pairs every one of those runs finished, which alone were counted
    seeds: list[tuple[str | None, int]] | None = None
    #: played run -> how many of its finished task/seed pairs the dataset was mined from (not held out)
    not_held_out: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _target_of(spec: str | None) -> Path | None:
    """The local path an engine spec (or profile) points at, if any."""
    if not spec:
        return None
    from automem.engines import EngineError, resolve_engine_spec, split_spec

    try:
        resolved, _ = resolve_engine_spec(spec)
        _, target = split_spec(resolved)
    except (EngineError, ValueError):
        return None
    if not target:
        return None
    try:
        return Path(target).expanduser().resolve()
    except (OSError, RuntimeError):
        return None


def runs_using(store: Store, adapter: str) -> list[str]:
    """Names of the runs that played with this adapter folder, oldest first."""
    wanted = Path(adapter).expanduser().resolve()
    names = []
    for run in store.run_engines():
        if wanted in (_target_of(run["memory_engine"]), _target_of(run["engine"])):
            names.append(run["name"])
    return names


def _train_seconds(log: str | None) -> float | None:
    for entry in reversed(json.loads(log or "[]")):
        if "train_runtime" in entry:
            return float(entry["train_runtime"])
    return None


def _qualities(
    store: Store,
    runs: list[str],
    cache: dict[tuple[str, frozenset[int] | None], Quality | None],
    only: dict[str, set[int]] | None = None,
) -> list[Quality]:
    out = []
    for run in runs:
        if only is not None and not only.get(run):
            continue  # deleted since the recipe was recorded, or no game in common with the others
        key = (run, frozenset(only[run]) if only is not None else None)
        if key not in cache:
            try:
                cache[key] = quality(store, run, only[run] if only is not None else None)
            except (MiningError, ValueError):  # a run deleted since, or one with no episodes yet
                cache[key] = None
        if cache[key] is not None:
            out.append(cache[key])
    return out


def _same_seeds(store: Store, runs: list[str]) -> tuple[list[tuple[str | None, int]], dict[str, set[int]]]:
    """The task/seed pairs the runs that still exist all finished, and each run's episodes on them."""
    present = [r for r in dict.fromkeys(runs) if store.run_by_name(r) is not None]
    if not present:
        return [], {}
    return common_finished_episodes(store, present)


def ledger(store: Store, names: list[str] | None = None, *, same_seeds: bool = False) -> list[Recipe]:
    """Every recipe (or those named), newest first, with the evidence of play.

    With ``same_seeds``, each recipe's runs (mined and played) are counted only on the task/seed
    pairs all of them finished, as ``automem compare --same-seeds`` does: a specialist run stopped
    early is then set against the base model on the same games, not on all of its episodes.
    """
    cache: dict[tuple[str, frozenset[int] | None], Quality | None] = {}
    recipes = []
    for row in store.training_runs_with_datasets():
        name, adapter, selection = row["name"], row["adapter"], row["selection"]
        if names and name not in names:
            continue
        config_all = json.loads(row["config"] or "{}")
        selection_all = json.loads(selection or "{}").get("config", {})
        sources = json.loads(row["dataset_runs"] or "[]")
        players = runs_using(store, adapter)
        mined_pairs = recorded_pairs(selection)
        if not mined_pairs:  # a dataset mined before the pairs were recorded: its runs' episodes
            mined_pairs = set(dataset_pairs(store, sources))
        overlap = {run: len(set(dataset_pairs(store, [run], finished=True)) & mined_pairs) for run in players}
        seeds, only = None, None
        if same_seeds:
            seeds, only = _same_seeds(store, sources + players)
        recipes.append(
            Recipe(
                name=name,
                status=row["status"],
                created_at=row["created_at"],
                dataset=row["dataset"] or "(deleted)",
                dataset_runs=sources,
                selection={k: selection_all[k] for k in SELECTION_KEYS if k in selection_all},
                examples={k: row[k] or 0 for k in ("candidates", "kept", "train", "val")},
                base=row["base"],
                # the backend that ran, not the one asked for ("auto")
                config={**{k: config_all[k] for k in RECIPE_KEYS if k in config_all}, "backend": row["backend"]},
                steps=int(row["steps"] or 0),
                train_loss=row["train_loss"],
                eval_loss=row["eval_loss"],
                train_seconds=_train_seconds(row["log"]),
                adapter=adapter,
                played=_qualities(store, players, cache, only),
                mined=_qualities(store, sources, cache, only),
                seeds=seeds,
                not_held_out={run: n for run, n in overlap.items() if n},
            )
        )
    return recipes


def _adapters(store: Store) -> list[tuple[Path, dict[str, Any]]]:
    """Every trained adapter folder (resolved, as ``_target_of`` resolves specs) with its dataset."""
    return [(Path(a["adapter"]).expanduser().resolve(), a) for a in store.adapters_and_datasets()]


@dataclass
class HeldOut:
    """Which task/seed pairs the specialists' datasets among some runs came from."""

    #: run -> the datasets behind its engines (a run that plays an adapter trained on them)
    datasets: dict[str, list[str]]
    #: the task/seed pairs of all those datasets
    pairs: set[tuple[str, int]]
    #: run -> its finished (task, seed) pairs that are also in ``pairs``
    shared: dict[str, list[tuple[str, int]]]


def held_out(store: Store, runs: list[str]) -> HeldOut:
    adapters = _adapters(store)
    datasets: dict[str, list[str]] = {}
    pairs: set[tuple[str, int]] = set()
    for run in runs:
        row = store.run_by_name(run)
        if row is None:
            raise MiningError(f"no run named {run!r} in {store.path}")
        targets = {_target_of(row["memory_engine"]), _target_of(row["engine"])} - {None}
        for path, info in adapters:
            if path in targets:
                datasets.setdefault(run, []).append(info["dataset"])
                pairs |= recorded_pairs(info["selection"])
    shared = {run: sorted(set(dataset_pairs(store, [run], finished=True)) & pairs) for run in runs}
    return HeldOut(datasets, pairs, shared)


def held_out_episodes(store: Store, runs: list[str], pairs: set[tuple[str, int]]) -> dict[str, set[int]]:
    """Each run's finished episodes on task/seed pairs outside ``pairs``."""
    out = {}
    for run in runs:
        row = store.run_by_name(run)
        out[run] = {
            int(e["id"]) for e in store.episodes(row["id"])
            if e["status"] == "finished" and (str(e["task"]), int(e["seed"])) not in pairs
        }  # fmt: skip
    return out


def seed_warnings(store: Store, specs: list[str | None], seeds: list[int]) -> list[str]:
    """A loud line for each engine spec that plays an adapter whose dataset was mined from some of
    ``seeds`` (any task): an evaluation there is not held out."""
    from automem.runs.seeds import format_seeds

    adapters = _adapters(store)
    out = []
    for spec in specs:
        target = _target_of(spec)
        for path, info in adapters:
            if target is None or path != target:
                continue
            mined = {seed for _, seed in recorded_pairs(info["selection"])}
            shared = sorted(mined & set(seeds))
            if shared:
                out.append(
                    f"NOT HELD OUT: {spec} plays an adapter trained on dataset {info['dataset']}, mined from "
                    f"seeds {format_seeds(shared)} of these; evaluate on seeds it did not see"
                )
    return out
