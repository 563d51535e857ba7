"""Memory-quality figures of runs side by side (`automem compare RUN_A RUN_B`), e.g. the base model
against the two-model mode with a memory specialist."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

from automem.finetune.mine import MiningError, candidates_of, episodes_of_runs
from automem.memory.ops import READ_VERBS
from automem.optimize.digest import build_digest
from automem.runs.metrics import mean_se
from automem.store.db import Store

_READS = frozenset(v.value for v in READ_VERBS)


@dataclass
class Quality:
    run: str
    game: str
    episodes: int
    progression_mean: float
    progression_se: float
    # None where the rate has nothing to count (no operation issued, no write made): a specialist
    # that never writes has no redundant-write rate, not a perfect one
    valid_op_rate: float | None  # memory operations that succeeded / all the model issued
    redundant_write_rate: float | None  # writes that changed nothing new / successful writes
    writes_read_later: float | None  # share of successful writes whose file was read (or shown pinned) afterwards
    growth_chars_per_step: float  # memory folder growth, summed over files
    tokens_per_step: float
    calls_per_step: float
    ops_per_step: float
    # the paper's memory metrics (automem.runs.memory_metrics defines each)
    useful_writes_per_step: float = 0.0  # successful writes that added something, per step
    log_done_rate: float = 0.0
    empty_lookup_rate: float = 0.0
    unproductive_action_rate: float = 0.0
    memory_chars_per_step: float = 0.0
    memory_tokens_per_step: float = 0.0
    helper_writes_per_step: float = 0.0  # memory operations by the structure's helpers, counted apart

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def quality(store: Store, run: str, episode_ids: Collection[int] | None = None) -> Quality:
    """A run's figures over all its episodes, or over those in ``episode_ids``."""
    row = store.run_by_name(run)
    if row is None:
        raise MiningError(f"no run named {run!r} in {store.path}")
    digest = build_digest(store, row["id"], episode_ids=episode_ids)
    chosen = [(e, name) for e, name in episodes_of_runs(store, [run]) if episode_ids is None or e in episode_ids]
    items = [c for episode_id, name in chosen for c in candidates_of(store, episode_id, name, k=10)]
    memory = digest.memory  # the digest computed them over the same episodes
    ops = store.run_memory_op_counts(row["id"], episode_ids)
    totals = store.run_step_totals(row["id"], episode_ids)
    steps = totals["steps"]
    writes = [c for c in items if c.ok and c.verb not in _READS and c.verb != "DONE"]
    files = digest.files.values()
    successful_writes = sum(f.writes for f in files)
    mean, se = mean_se([e.progression for e in digest.episodes if e.status == "finished"])
    return Quality(
        run=run,
        game=digest.game,
        episodes=len(digest.episodes),
        progression_mean=mean,
        progression_se=se,
        valid_op_rate=ops["model_ok"] / ops["model_ops"] if ops["model_ops"] else None,
        redundant_write_rate=sum(f.redundant_writes for f in files) / successful_writes if successful_writes else None,
        writes_read_later=sum(c.signals.get("read_later", False) for c in writes) / len(writes) if writes else None,
        growth_chars_per_step=sum(f.growth_chars_per_step for f in files),
        tokens_per_step=totals["tokens"] / steps if steps else 0.0,
        calls_per_step=totals["llm_calls"] / steps if steps else 0.0,
        # the agent's operations: helpers' writes are counted apart (helper_writes_per_step)
        ops_per_step=(totals["memory_ops"] - ops["helper_ops"]) / steps if steps else 0.0,
        useful_writes_per_step=sum(c.signals.get("not_redundant", False) for c in writes) / steps if steps else 0.0,
        log_done_rate=memory.done_rate,
        empty_lookup_rate=memory.empty_lookup_rate,
        unproductive_action_rate=memory.unproductive_rate,
        memory_chars_per_step=memory.memory_chars_per_step,
        memory_tokens_per_step=memory.memory_tokens_per_step,
        helper_writes_per_step=ops["helper_ok"] / steps if steps else 0.0,
    )


def common_finished_episodes(store: Store, runs: list[str]) -> tuple[list[tuple[str | None, int]], dict[str, set[int]]]:
    """The (task, seed) pairs every run finished, and each run's finished episodes on them: so two
    runs stopped at different points are compared on the same games."""
    finished: dict[str, dict[tuple[str | None, int], int]] = {}
    for run in runs:
        row = store.run_by_name(run)
        if row is None:
            raise MiningError(f"no run named {run!r} in {store.path}")
        finished[run] = {
            (e["task"], int(e["seed"])): int(e["id"]) for e in store.episodes(row["id"]) if e["status"] == "finished"
        }
    common = sorted(set.intersection(*(set(f) for f in finished.values())), key=lambda p: (str(p[0]), p[1]))
    return common, {run: {finished[run][pair] for pair in common} for run in runs}
