from __future__ import annotations

import pytest

from automem.engines import EngineError, make_engine
from automem.engines.llamacpp import LlamaCppEngine
from automem.memory.grammar import forced_start

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


def test_a_forced_prefix_is_prefilled_and_the_line_ends_the_call(engine: LlamaCppEngine) -> None:
    forced = forced_start(verbs=set(), paths=[], actions=["noop", "move_left", "move_right"], allow_done=False,
                          allow_act=True, allow_new_paths=False)  # fmt: skip
    assert forced is not None and forced.prefix == "ACT"
    plain_out, forced_out = 0, 0
    for seed in range(6):
        plain = engine.complete(MESSAGES, grammar=GRAMMAR + ' "\\n"?', max_tokens=12, temperature=1.0, seed=seed)
        line = engine.complete_line(
            MESSAGES, prefix=forced.prefix, grammar=forced.rest, max_tokens=12, temperature=1.0, seed=seed
        )
        assert line.text in {"ACT noop", "ACT move_left", "ACT move_right"}, line.text  # prefix included, no newline
        assert line.finish_reason == "stop"
        plain_out += plain.output_tokens
        forced_out += line.output_tokens
    # "ACT" is prefilled and neither the newline's end-of-text token is decoded
    assert forced_out < plain_out


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


@pytest.mark.model
def test_the_key_cache_type_is_an_option_checked_before_loading() -> None:
    # q8_0 is the CPU default; f16 is llama.cpp's own: both give grammar-bound answers
    for cache in ("q8_0", "f16"):
        engine = make_engine("llamacpp", cache_type_k=cache)
        try:
            assert engine.complete(MESSAGES, grammar=GRAMMAR, max_tokens=12, seed=1).text.startswith("ACT ")
        finally:
            engine.close()
    with pytest.raises(EngineError, match="cache_type_k"):
        make_engine("llamacpp", cache_type_k="q3")  # the options model names the field


def test_unknown_engine_name() -> None:
    with pytest.raises(EngineError, match="unknown engine"):
        make_engine("teleporter:x")


def test_same_seed_same_reply_and_refusals_are_engine_errors(engine: LlamaCppEngine) -> None:
    grammar = 'root ::= "ACT " [a-z_]{1,12}'
    a = engine.complete(MESSAGES, grammar=grammar, max_tokens=12, temperature=0.9, seed=5)
    engine.complete(MESSAGES + [{"role": "user", "content": "other"}], max_tokens=4, seed=9)  # disturb the cache
    b = engine.complete(MESSAGES, grammar=grammar, max_tokens=12, temperature=0.9, seed=5)
    assert a.text == b.text and a.text.startswith("ACT ")
    with pytest.raises(EngineError, match="failed to parse grammar"):
        engine.complete(MESSAGES, grammar="root ::= [a-z]{1,", max_tokens=4)
    with pytest.raises(EngineError, match="exceeds the available context"):
        engine.complete([{"role": "user", "content": "word " * 9000}], max_tokens=4)
    assert engine.complete(MESSAGES, grammar=GRAMMAR, max_tokens=12).text.startswith("ACT ")  # still serving


def test_parallel_slots_serve_threads_at_once(bundled_model_path) -> None:
    import threading

    engine = LlamaCppEngine(bundled_model_path, n_ctx=1024, n_parallel=2, n_threads=2)
    results: dict[int, str] = {}

    def ask(seed: int) -> None:
        results[seed] = engine.complete(MESSAGES, grammar=GRAMMAR, max_tokens=12, seed=seed).text

    threads = [threading.Thread(target=ask, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    engine.close()
    assert sorted(results) == [0, 1, 2, 3]
    assert set(results.values()) <= {"ACT noop", "ACT move_left", "ACT move_right"}
    with pytest.raises(EngineError, match="closed"):
        engine.complete(MESSAGES)


def test_tool_calls_are_offered_and_parsed_for_templates_without_tools() -> None:
    from automem.engines.llamacpp import parse_tool_call, tool_call_grammar

    tools = [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}]
    grammar = tool_call_grammar(tools)
    assert grammar.startswith("%llguidance") and '"const":"look"' in grammar
    call = parse_tool_call('<tool_call>{"name": "look", "arguments": {"x": 1}}</tool_call>')
    assert call is not None and (call.name, call.arguments) == ("look", '{"x": 1}')
    assert parse_tool_call("message: no thanks") is None
    assert parse_tool_call("<tool_call>{broken</tool_call>") is None
