"""Evaluation figures computed from the store, so a resumed run is summarised as a whole.

Progression follows BALROG's definitions per game (see docs/games.md), reported as the mean over
episodes with its standard error (sample standard deviation / sqrt(n)).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from automem.store.db import Store


@dataclass
class GroupSummary:
    game: str
    task: str
    episodes: int
    progression_mean: float
    progression_se: float
    steps_mean: float
    tokens_per_step: float
    llm_calls_per_step: float
    memory_ops_per_step: float
    invalid_output_rate: float
    cached_share: float
    #: achievement -> number of episodes that unlocked it
    achievements: dict[str, int] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["achievements"] = ";".join(f"{k}:{v}" for k, v in sorted(self.achievements.items()))
        return row


def mean_se(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean, se


def summarize(store: Store, run_id: int, *, only_finished: bool = True) -> list[GroupSummary]:
    """One summary per (game, task), plus an ``all`` row per game when it has several tasks."""
    episodes = store.episode_totals(run_id, only_finished=only_finished)
    groups: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for row in episodes:
        groups.setdefault((row[1], row[2]), []).append(row)
    games: dict[str, list[tuple[Any, ...]]] = {}
    for row in episodes:
        games.setdefault(row[1], []).append(row)
    for game, rows in games.items():
        if len({r[2] for r in rows}) > 1:
            groups[(game, "all")] = rows
    return [_group(game, task, rows) for (game, task), rows in groups.items()]


def _group(game: str, task: str, rows: list[tuple[Any, ...]]) -> GroupSummary:
    mean, se = mean_se([float(r[3] or 0.0) for r in rows])
    steps = sum(int(r[4] or 0) for r in rows)
    calls = sum(int(r[7]) for r in rows)
    unlocked: Counter[str] = Counter()
    for r in rows:
        unlocked.update(set(json.loads(r[5] or "[]")))
    per_step = max(steps, 1)
    input_tokens = sum(int(r[11]) for r in rows)
    return GroupSummary(
        game=game,
        task=task,
        episodes=len(rows),
        progression_mean=round(mean, 3),
        progression_se=round(se, 3),
        steps_mean=round(steps / max(len(rows), 1), 2),
        tokens_per_step=round(sum(int(r[6]) for r in rows) / per_step, 1),
        llm_calls_per_step=round(calls / per_step, 3),
        memory_ops_per_step=round(sum(int(r[8]) for r in rows) / per_step, 3),
        invalid_output_rate=round(sum(int(r[9]) for r in rows) / max(calls, 1), 4),
        cached_share=round(sum(int(r[10]) for r in rows) / input_tokens, 4) if input_tokens else 0.0,
        achievements=dict(unlocked),
    )


def export(summaries: list[GroupSummary], out_prefix: Path, meta: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``PREFIX.json`` (with run metadata) and ``PREFIX.csv`` (one row per game and task)."""
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    json_path = out_prefix.with_suffix(".json")
    csv_path = out_prefix.with_suffix(".csv")
    json_path.write_text(json.dumps({**meta, "summary": [asdict(s) for s in summaries]}, indent=2))
    rows = [s.as_row() for s in summaries]
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["game"])
        writer.writeheader()
        writer.writerows(rows)
    return json_path, csv_path
