"""Bounded retries with exponential backoff and jitter, shared by the HTTP engines.

The clients' own retry loops are switched off so both engines behave the same way: a transient
failure (HTTP 408/429/5xx, a refused connection, a timeout) is tried again a bounded number of
times, then surfaces as one EngineError. The agent turns repeated EngineErrors into the failure
of that episode only, so giving up is safe; waiting forever is not.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from automem.engines.base import EngineError

T = TypeVar("T")

#: statuses worth another try: request timeout, rate limit, server errors (and overloaded servers)
RETRYABLE_STATUS = frozenset({408, 429})


def status_is_retryable(status: int | None) -> bool:
    return status is not None and (status in RETRYABLE_STATUS or status >= 500)


class Transient(Exception):
    """Raised by an attempt that may succeed if tried again; ``message`` is one line for the user."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 4  # tries after the first one
    backoff_s: float = 0.5  # first delay; doubles each time
    max_backoff_s: float = 10.0  # no single wait is longer, Retry-After included

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise EngineError("retries, backoff_s and max_backoff_s must not be negative")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (0-based)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_backoff_s)
        ceiling = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        # "equal jitter": half fixed, half random, so threads hitting the same 429 spread out
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (the HTTP-date form is rare from model servers: ignored)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def with_retries(
    attempt: Callable[[], T],
    policy: RetryPolicy,
    *,
    where: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``attempt`` until it returns, raises EngineError (final), or has raised Transient too often."""
    for n in range(policy.retries + 1):
        try:
            return attempt()
        except Transient as exc:
            if n == policy.retries:
                tries = policy.retries + 1
                raise EngineError(f"{where}: {exc.message} (gave up after {tries} tries)") from None
            sleep(policy.delay(n, exc.retry_after))
    raise AssertionError("unreachable")  # pragma: no cover


def unexpected(exc: Exception) -> Transient:
    """What a client raised besides its own error types: a body cut short or not JSON (the
    client's json.loads or its model validation, both ValueErrors), or anything else the HTTP
    stack throws. Worth another try, and never allowed to escape as a traceback."""
    if isinstance(exc, ValueError):
        return Transient(f"the reply is not valid JSON ({one_line(exc, 80)})")
    return Transient(f"{type(exc).__name__}: {one_line(exc, 120)}")


def one_line(text: object, limit: int = 200) -> str:
    """Server messages can be multi-line tracebacks or HTML; an EngineError shows one short line."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
