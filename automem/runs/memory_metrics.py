"""The paper's memory metrics, each defined once, from an episode's stored rows.

- **unproductive actions**: steps whose action left the agent where it was (the observation after
  it is the one before it: stuck) or took it back to where it was two steps ago (the observation
  after it is the one before the previous action, and differs from the one between: oscillating),
  among the steps that earned no reward;
- **empty look-ups**: successful memory look-ups that returned nothing (a search without a match,
  an empty file shown; ``memory.ops.empty_lookup``), among all look-ups;
- **memory context per step**: characters of memory the prompts of a step carried (the pinned
  files in its first prompt, plus the results of its look-ups), and the same in tokens at that
  prompt's own characters-per-token ratio;
- **DONE rate**: LOG turns whose whole answer was ``DONE``, among all LOG turns;
- **helper writes**: memory operations the structure's helpers made (source ``helper``), counted
  apart: every other figure here is about the model's own operations.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from automem.agent.prompt import pinned_sections
from automem.memory.ops import READ_VERBS, empty_lookup
from automem.store.db import Store

_READS = frozenset(v.value for v in READ_VERBS)


@dataclass
class MemoryMetrics:
    steps: int = 0
    unrewarded_steps: int = 0
    stuck: int = 0
    oscillating: int = 0
    lookups: int = 0
    empty_lookups: int = 0
    memory_chars: int = 0
    memory_tokens: float = 0.0
    log_turns: int = 0
    done_turns: int = 0
    helper_writes: int = 0

    def add(self, other: MemoryMetrics) -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)

    @property
    def unproductive_rate(self) -> float:
        return (self.stuck + self.oscillating) / self.unrewarded_steps if self.unrewarded_steps else 0.0

    @property
    def empty_lookup_rate(self) -> float:
        return self.empty_lookups / self.lookups if self.lookups else 0.0

    @property
    def memory_chars_per_step(self) -> float:
        return self.memory_chars / self.steps if self.steps else 0.0

    @property
    def memory_tokens_per_step(self) -> float:
        return self.memory_tokens / self.steps if self.steps else 0.0

    @property
    def done_rate(self) -> float:
        return self.done_turns / self.log_turns if self.log_turns else 0.0

    @property
    def helper_writes_per_step(self) -> float:
        return self.helper_writes / self.steps if self.steps else 0.0

    def figures(self) -> dict[str, float]:
        return {
            "unproductive_action_rate": self.unproductive_rate,
            "empty_lookup_rate": self.empty_lookup_rate,
            "memory_chars_per_step": self.memory_chars_per_step,
            "memory_tokens_per_step": self.memory_tokens_per_step,
            "log_done_rate": self.done_rate,
            "helper_writes_per_step": self.helper_writes_per_step,
        }


def pinned_chars(*user_messages: str) -> int:
    """Characters of the pinned files a prompt carries, as one block (``== path ==`` lines
    included): the latest version of each file its user messages show (a transcript shows a file
    again when it changed), 0 when none."""
    shown: dict[str, str] = {}
    for message in user_messages:
        shown.update(pinned_sections(message))
    return sum(len(f"== {path} ==\n") + len(body) for path, body in shown.items()) + max(0, len(shown) - 1)


def is_done_answer(response: str | None) -> bool:
    return (response or "").strip() == "DONE"


def episode_metrics(store: Store, episode_id: int) -> MemoryMetrics:
    m = MemoryMetrics()
    steps = store.steps(episode_id)
    m.steps = len(steps)
    observations = [s["observation"] for s in steps]
    for i, step in enumerate(steps):
        if step["reward"] > 0 or i + 1 >= len(steps):
            continue  # the observation after the last step's action is not stored
        m.unrewarded_steps += 1
        after = observations[i + 1]
        if after == observations[i]:
            m.stuck += 1
        elif i >= 1 and after == observations[i - 1]:
            m.oscillating += 1
    step_chars: dict[int, int] = {}
    for op in store.memory_ops_of(episode_id, source="model"):
        if op["verb"] not in _READS:
            continue
        m.lookups += 1
        if empty_lookup(op["verb"], bool(op["ok"]), op["message"]):
            m.empty_lookups += 1
        elif op["ok"]:
            step_chars[op["step"]] = step_chars.get(op["step"], 0) + len(op["message"] or "")
    for call in store.first_calls_of_steps(episode_id):
        prompt = json.loads(call["prompt"] or "[]")
        users = [msg["content"] for msg in prompt if msg.get("role") == "user"]
        chars = pinned_chars(*users)
        total = chars + step_chars.get(call["step"], 0)
        prompt_chars = sum(len(msg.get("content") or "") for msg in prompt)
        m.memory_chars += total
        if prompt_chars and call["input_tokens"]:
            m.memory_tokens += total * call["input_tokens"] / prompt_chars
    m.helper_writes = sum(1 for op in store.memory_ops_of(episode_id, source="helper") if op["ok"])
    for call in store.calls_of(episode_id, phase="LOG"):
        m.log_turns += 1
        m.done_turns += is_done_answer(call["response"])
    return m


def run_metrics(store: Store, episode_ids: Iterable[int]) -> MemoryMetrics:
    total = MemoryMetrics()
    for episode_id in episode_ids:
        total.add(episode_metrics(store, episode_id))
    return total


def metrics_row(m: MemoryMetrics) -> dict[str, Any]:
    return {key: round(value, 4) for key, value in m.figures().items()}
