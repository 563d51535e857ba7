"""Batch single calls from many episode threads into one ``complete_many`` of a batching engine.

The agent calls ``complete()`` one turn at a time; vLLM is fast when it generates for many
sequences at once. Episode threads share one BatchingEngine: each call waits in a queue, and one
dispatcher sends whatever is waiting (up to ``max_batch``, after at most ``window_s``) as one
batch. An engine without ``complete_many`` is called one request at a time.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from automem.engines.base import Completion, Engine, EngineError, Message


@dataclass
class _Pending:
    request: dict[str, Any]
    future: Future[Completion]


class BatchingEngine:
    def __init__(self, inner: Engine, *, max_batch: int = 64, window_s: float = 0.02) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.max_batch = max_batch
        self.window_s = window_s
        self.batches: list[int] = []  # sizes of the batches sent, for reports and tests
        self._queue: list[_Pending] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._dispatch, name="automem-batcher", daemon=True)
        self._thread.start()

    @property
    def supports_grammar(self) -> bool:
        return bool(self.inner.supports_grammar)

    def complete(
        self,
        messages: list[Message],
        *,
        grammar: str | None = None,
        max_tokens: int = 64,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> Completion:
        pending = _Pending(
            {"messages": messages, "grammar": grammar, "max_tokens": max_tokens, "temperature": temperature,
             "seed": seed},
            Future(),
        )  # fmt: skip
        with self._cond:
            if self._closed:
                raise EngineError("engine is closed")
            self._queue.append(pending)
            self._cond.notify()
        return pending.future.result()

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed and not self._queue:
                    return
                # give the other episode threads a moment to queue their turn too
                self._cond.wait_for(lambda: len(self._queue) >= self.max_batch or self._closed, self.window_s)
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            self.batches.append(len(batch))
            try:
                many = getattr(self.inner, "complete_many", None)
                if many is not None:
                    results = many([p.request for p in batch])
                else:
                    results = [self.inner.complete(**p.request) for p in batch]
                for p, r in zip(batch, results, strict=True):
                    p.future.set_result(r)
            except BaseException as exc:  # every waiting turn gets the error (an EngineError ends episodes)
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc if isinstance(exc, EngineError) else EngineError(str(exc)))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=30)
        self.inner.close()
