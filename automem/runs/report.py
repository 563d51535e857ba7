"""How runs are shown: one line per step while playing, a table at the end (rich)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from automem.memory.ops import READ_VERBS, Operation
from automem.memory.syntax import format_command
from automem.records import OpRecord
from automem.runs.episode import EpisodeSummary, StepEvent
from automem.runs.metrics import GroupSummary


def print_step(console: Console, event: StepEvent) -> None:
    line = Text(f"{event.step:>4} ", style="dim")
    style = "bold" if event.decision.source == "model" else "yellow"
    line.append(f"{event.decision.action:<18}", style=style)
    if event.reward:
        line.append(f" r{event.reward:+g}", style="green")
    for op in event.record.ops:
        mark = "" if op.ok else " ✗"
        colour = ("cyan" if op.verb in READ_VERBS else "magenta") if op.ok else "red"
        line.append(f"  {op.phase} {_shorten(_command_text(op), 60)}{mark}", style=colour)
    if event.decision.invalid:
        line.append(f" invalid×{event.decision.invalid}", style="red")
    if event.unlocked:
        line.append(" unlocked " + ", ".join(event.unlocked), style="bold green")
    console.print(line)


def _command_text(op: OpRecord) -> str:
    try:
        return format_command(Operation.from_dict({"verb": op.verb, "path": op.path, **op.args}))
    except (ValueError, KeyError, TypeError):
        return f"{op.verb} {op.path}"


def _shorten(text: str, width: int) -> str:
    text = text.replace("\n", " / ")
    return text if len(text) <= width else text[: width - 1] + "…"


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
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="calls, ops: model calls and memory operations per step; bad: invalid outputs; "
        "cache: share of prompt tokens from the KV cache; s/st: seconds per step",
    )
    cols = [
        ("ep", "episode_id"),
        ("seed", "seed"),
        ("steps", "steps"),
        ("prog%", "progression"),
        ("calls", "llm_calls_per_step"),
        ("ops", "memory_ops_per_step"),
        ("bad", "invalid_outputs"),
        ("cache", "cached_share"),
        ("s/st", "seconds_per_step"),
        ("ended", "ended"),
    ]
    for head, _ in cols:
        if head == "ended":
            table.add_column(head, overflow="fold", max_width=28)
        else:
            table.add_column(head, justify="right", no_wrap=True, min_width=len(head))
    for r in rows:
        cells = [str(r[key]) if r[key] is not None else "-" for _, key in cols]
        if r["status"] != "finished":
            cells[-1] = f"{r['status']}: {r['error'] or r['ended'] or ''}"
        table.add_row(*cells)
    return table


def eval_table(summaries: list[GroupSummary], title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for head in ("task", "n", "progression", "steps", "tok/st", "calls/st", "ops/st", "invalid", "cache"):
        table.add_column(head, justify="left" if head == "task" else "right", no_wrap=head != "task")
    for s in summaries:
        table.add_row(
            s.task,
            str(s.episodes),
            f"{s.progression_mean:.1f} ± {s.progression_se:.1f}",
            f"{s.steps_mean:.0f}",
            f"{s.tokens_per_step:.0f}",
            f"{s.llm_calls_per_step:.2f}",
            f"{s.memory_ops_per_step:.2f}",
            f"{100 * s.invalid_output_rate:.1f}%",
            f"{100 * s.cached_share:.0f}%",
        )
    return table
