"""How runs are shown: one line per step while playing, a table at the end (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from automem.runs.episode import EpisodeSummary, StepEvent


def print_step(console: Console, event: StepEvent) -> None:
    line = Text(f"{event.step:>4} ", style="dim")
    style = "bold" if event.decision.source == "model" else "yellow"
    line.append(f"{event.decision.action:<18}", style=style)
    if event.reward:
        line.append(f" r{event.reward:+g}", style="green")
    for op in event.record.ops:
        mark = "✓" if op.ok else "✗"
        colour = ("cyan" if op.verb in {"view", "tail", "search", "count"} else "magenta") if op.ok else "red"
        line.append(f" {op.phase}:{op.verb} {op.path}{mark}", style=colour)
    if event.decision.invalid:
        line.append(f" invalid×{event.decision.invalid}", style="red")
    if event.unlocked:
        line.append(" unlocked " + ", ".join(event.unlocked), style="bold green")
    console.print(line)


def summary_rows(summaries: list[EpisodeSummary]) -> list[dict[str, Any]]:
    rows = []
    for s in summaries:
        steps = max(s.steps, 1)
        rows.append(
            {
                "episode_id": s.episode_id,
                "seed": s.seed,
                "status": s.status,
                "steps": s.steps,
                "progression": round(s.progression, 2),
                "achievements": s.achievements,
                "reward": round(s.total_reward, 3),
                "ended": s.ended_reason,
                "error": s.error,
                "llm_calls_per_step": round(s.llm_calls / steps, 2),
                "memory_ops_per_step": round(s.memory_ops / steps, 2),
                "invalid_outputs": s.invalid_outputs,
                "cached_share": round(s.cached_tokens / s.input_tokens, 3) if s.input_tokens else 0.0,
                "tokens_per_step": round((s.input_tokens + s.output_tokens) / steps, 1),
                "seconds_per_step": round(s.wall_s / steps, 3),
            }
        )
    return rows


def summary_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    cols = [
        ("episode", "episode_id"),
        ("seed", "seed"),
        ("status", "status"),
        ("steps", "steps"),
        ("progress %", "progression"),
        ("reward", "reward"),
        ("calls/step", "llm_calls_per_step"),
        ("mem ops/step", "memory_ops_per_step"),
        ("invalid", "invalid_outputs"),
        ("cached", "cached_share"),
        ("s/step", "seconds_per_step"),
        ("ended", "ended"),
    ]
    for head, _ in cols:
        table.add_column(head, justify="right" if head not in ("status", "ended") else "left")
    for r in rows:
        table.add_row(*(str(r[key]) if r[key] is not None else "-" for _, key in cols))
    return table
