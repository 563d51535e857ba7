"""Episode threads sharing one BatchingEngine: turns are grouped into batches (real model)."""

from __future__ import annotations

import threading

from automem.engines.batching import BatchingEngine
from automem.engines.llamacpp import LlamaCppEngine

MESSAGES = [
    {"role": "system", "content": "Answer with one line: ACT <action>."},
    {"role": "user", "content": "Actions: north, south. Choose."},
]
GRAMMAR = 'root ::= "ACT " ("north" | "south")'


class _ManyLlama:
    """The real llama.cpp engine with a complete_many (sequential) to stand where vLLM would batch."""

    def __init__(self, inner: LlamaCppEngine) -> None:
        self.inner, self.name, self.model, self.supports_grammar = inner, inner.name, inner.model, True
        self.calls: list[int] = []

    def complete_many(self, requests):  # type: ignore[no-untyped-def]
        self.calls.append(len(requests))
        return [self.inner.complete(**r) for r in requests]

    def close(self) -> None:
        pass


def test_threads_are_batched_and_each_gets_its_answer(engine: LlamaCppEngine) -> None:
    inner = _ManyLlama(engine)
    batcher = BatchingEngine(inner, window_s=0.5)  # type: ignore[arg-type]
    results: dict[int, str] = {}
    barrier = threading.Barrier(4)

    def worker(i: int) -> None:
        barrier.wait()
        results[i] = batcher.complete(MESSAGES, grammar=GRAMMAR, max_tokens=8, seed=i).text

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    batcher.close()
    assert sorted(results) == [0, 1, 2, 3]
    assert all(text in {"ACT north", "ACT south"} for text in results.values())
    assert sum(inner.calls) == 4 and max(inner.calls) >= 2  # at least one real batch
    assert batcher.batches == inner.calls


def test_errors_reach_every_waiting_turn(engine: LlamaCppEngine) -> None:
    class Broken(_ManyLlama):
        def complete_many(self, requests):  # type: ignore[no-untyped-def]
            raise RuntimeError("GPU fell off")

    batcher = BatchingEngine(Broken(engine))  # type: ignore[arg-type]
    try:
        batcher.complete(MESSAGES, grammar=GRAMMAR)
    except Exception as exc:
        assert "GPU fell off" in str(exc) and type(exc).__name__ == "EngineError"
    else:
        raise AssertionError("expected an EngineError")
    finally:
        batcher.close()
