"""The Engine protocol: one chat completion at a time, with optional grammar constraints."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from automem.errors import AutomemError


class EngineError(AutomemError):
    """A model that cannot be loaded or a call that failed; shown to the user as one line."""


Message = dict[str, str]


def api_key_from_env(name: str) -> str:
    """The key held by environment variable ``name`` (profiles name the variable, never the key)."""
    key = os.environ.get(name)
    if not key:
        raise EngineError(f"environment variable {name} (api_key_env) is not set or empty")
    return key


@dataclass
class ToolCall:
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass
class Completion:
    text: str
    input_tokens: int
    cached_tokens: int  # prompt tokens served from the KV/prefix cache
    output_tokens: int
    latency_s: float
    finish_reason: str | None = None
    #: functions the model asked to call (only from ``complete_tools``)
    tool_calls: list[ToolCall] = field(default_factory=list)


def supports_tools(engine: object) -> bool:
    """Engines that can be offered functions have ``complete_tools(messages, tools, ...)`` and say
    so with ``supports_tools``; it is optional, so it is not part of the Engine protocol."""
    return bool(getattr(engine, "supports_tools", False)) and hasattr(engine, "complete_tools")


@runtime_checkable
class Engine(Protocol):
    name: str  # registry name, e.g. "llamacpp"
    model: str  # what is loaded, e.g. a file name
    #: True when ``complete`` honours ``grammar`` so output is valid by construction
    supports_grammar: bool

    def complete(
        self,
        messages: list[Message],
        *,
        grammar: str | None = None,
        max_tokens: int = 64,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> Completion: ...

    def close(self) -> None: ...


class PersonOnly:
    """The engine of an episode a person plays entirely (``EpisodeRunner.take_over`` every step, as
    the benchmarks and some tests do): asking it for a completion is an error."""

    name = "person"
    model = "none"
    supports_grammar = False

    def complete(
        self,
        messages: list[Message],
        *,
        grammar: str | None = None,
        max_tokens: int = 64,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> Completion:
        raise EngineError("no model here: every step of this episode is played by a person")

    def close(self) -> None:
        pass
