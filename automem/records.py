"""What one step of an episode records: its model calls, its memory operations and the step itself.

Plain dataclasses below both the agent (which fills them as it plays) and the store (which writes
them in one transaction per step), so neither imports the other for them.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from automem.memory.ops import OpResult


def now() -> str:
    """An ISO-8601 UTC timestamp to the millisecond, the form every record's and row's ``*_at`` holds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class CallRecord:
    phase: str
    turn: int
    engine: str
    model: str
    prompt: list[dict[str, str]]
    grammar: str | None
    response: str
    parsed: str
    valid: bool
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    latency_s: float
    finish_reason: str | None
    created_at: str = field(default_factory=now)


@dataclass
class OpRecord:
    phase: str
    turn: int
    source: str
    verb: str
    path: str
    args: dict[str, Any]
    ok: bool
    message: str
    content_before: str | None
    content_after: str | None
    call_index: int | None = None  # index into the step's CallRecord list
    created_at: str = field(default_factory=now)

    @classmethod
    def from_result(
        cls, result: OpResult, *, phase: str, turn: int, source: str, call_index: int | None = None
    ) -> OpRecord:
        return cls(
            phase=phase,
            turn=turn,
            source=source,
            verb=str(result.verb) if result.verb is not None else "",  # Verb's str() is its value
            path=result.path or "",
            args=result.args,
            ok=result.ok,
            message=result.message,
            content_before=result.before,
            content_after=result.after,
            call_index=call_index,
        )


@dataclass
class StepRecord:
    step: int
    observation: str
    helper_notes: str
    frame: dict[str, Any]
    action: str
    action_source: str
    reward: float
    done: bool
    progression: float
    achievements: list[str]
    invalid_outputs: int
    model_s: float
    game_s: float
    harness_s: float = 0.0
    calls: list[CallRecord] = field(default_factory=list)
    ops: list[OpRecord] = field(default_factory=list)
