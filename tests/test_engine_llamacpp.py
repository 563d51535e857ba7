from __future__ import annotations

import pytest

from automem.engines import EngineError, make_engine
from automem.engines.llamacpp import LlamaCppEngine

MESSAGES = [
    {"role": "system", "content": "You play a game. Answer with one line: ACT <action>."},
    {"role": "user", "content": "Actions: noop, move_left, move_right. Choose one."},
]
GRAMMAR = 'root ::= "ACT " ("noop" | "move_left" | "move_right")'


def test_grammar_constrains_output_and_prefix_is_reused(engine: LlamaCppEngine) -> None:
    first = engine.complete(MESSAGES, grammar=GRAMMAR, max_tokens=12, seed=1)
    assert first.text in {"ACT noop", "ACT move_left", "ACT move_right"}
    assert first.input_tokens > 20 and first.output_tokens > 0
    second = engine.complete(
        MESSAGES + [{"role": "assistant", "content": first.text}, {"role": "user", "content": "Again."}],
        grammar=GRAMMAR,
        max_tokens=12,
    )
    # everything up to the first call's prompt is served from the KV cache
    assert second.cached_tokens >= first.input_tokens - 1
    assert second.text.startswith("ACT ")


def test_missing_and_broken_model_files_are_clear_errors(tmp_path) -> None:
    with pytest.raises(EngineError, match="not found"):
        make_engine(f"llamacpp:{tmp_path / 'nope.gguf'}")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(EngineError, match="not a GGUF"):
        make_engine(str(junk))
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(EngineError, match="cannot load"):
        make_engine(str(truncated))


def test_unknown_engine_name() -> None:
    with pytest.raises(EngineError, match="unknown engine"):
        make_engine("teleporter:x")
