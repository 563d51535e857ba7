"""The Engine protocol: one chat completion at a time, with optional grammar constraints."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class EngineError(Exception):
    """A model that cannot be loaded or a call that failed; shown to the user as one line."""


Message = dict[str, str]


def api_key_from_env(name: str) -> str:
    """The key held by environment variable ``name`` (profiles name the variable, never the key)."""
    key = os.environ.get(name)
    if not key:
        raise EngineError(f"environment variable {name} (api_key_env) is not set or empty")
    return key


@dataclass
class Completion:
    text: str
    input_tokens: int
    cached_tokens: int  # prompt tokens served from the KV/prefix cache
    output_tokens: int
    latency_s: float
    finish_reason: str | None = None


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
