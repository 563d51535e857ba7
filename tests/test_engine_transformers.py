"""The transformers engine on CPU: the bundled GGUF loaded through ``gguf_file=``, and a LoRA adapter."""

from __future__ import annotations

import json

import pytest

from automem.engines import EngineError

SKIP = "the transformers engine is an optional extra: pip install 'automem[transformers]'"
pytest.importorskip("torch", reason=SKIP)
pytest.importorskip("transformers", reason=SKIP)
pytest.importorskip("gguf", reason=SKIP)

from automem.engines.transformers_engine import TransformersEngine, factory, first_line  # noqa: E402

pytestmark = pytest.mark.model

MESSAGES = [
    {"role": "system", "content": "You play a game. Answer with one line: ACT <action>."},
    {"role": "user", "content": "Actions: noop, move_left, move_right. Choose one."},
]


@pytest.fixture(scope="module")
def engine(bundled_model_path):
    # dequantizing the GGUF takes most of this module's time, so the tests share one engine
    eng = factory(str(bundled_model_path), device="cpu")
    yield eng
    eng.close()


def test_first_line() -> None:
    assert first_line("\n  ACT noop\nmore") == ("ACT noop", True)
    assert first_line("ACT no") == ("ACT no", False)
    assert first_line("\n\n") == ("", False)


def test_completion_is_one_line_with_counts(engine: TransformersEngine) -> None:
    engine.reset()
    out = engine.complete(MESSAGES, grammar='root ::= "ACT noop"', max_tokens=16, temperature=0, seed=1)
    assert engine.supports_grammar is False  # so the grammar above is ignored, not an error
    assert "\n" not in out.text and out.text
    assert out.input_tokens > 20 and 0 < out.output_tokens <= 16
    assert out.cached_tokens == 0 and out.latency_s > 0
    assert out.finish_reason in {"stop", "length"}


def test_prefix_reuse_gives_the_same_text_as_a_fresh_cache(engine: TransformersEngine) -> None:
    engine.reset()
    first = engine.complete(MESSAGES, max_tokens=12, temperature=0, seed=1)
    longer = MESSAGES + [{"role": "assistant", "content": first.text}, {"role": "user", "content": "Again, other one."}]
    greedy = engine.complete(longer, max_tokens=12, temperature=0, seed=1)
    # the whole first prompt (it ends with the assistant header) is a prefix of the second
    assert greedy.cached_tokens >= first.input_tokens
    sampled = engine.complete(longer, max_tokens=12, temperature=0.9, seed=7)
    assert sampled.cached_tokens == sampled.input_tokens - 1  # same prompt: all but the last token
    engine.reset()  # nothing else is kept between calls: a reset engine is a fresh one
    fresh_greedy = engine.complete(longer, max_tokens=12, temperature=0, seed=1)
    assert fresh_greedy.cached_tokens == 0
    engine.reset()
    fresh_sampled = engine.complete(longer, max_tokens=12, temperature=0.9, seed=7)
    assert (greedy.text, sampled.text) == (fresh_greedy.text, fresh_sampled.text)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft calls a deprecated transformers helper
def test_lora_adapter_on_a_model_folder(engine: TransformersEngine, tmp_path) -> None:
    pytest.importorskip("peft", reason="LoRA adapters need peft")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    # a tiny random Llama with the bundled model's tokenizer: a real folder, loaded in a second
    tokenizer = engine._tokenizer
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    folder = tmp_path / "tiny"
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    lora = get_peft_model(
        LlamaForCausalLM.from_pretrained(folder),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    adapter = tmp_path / "adapter"
    lora.save_pretrained(adapter)

    eng = TransformersEngine(folder, adapter=adapter, device="cpu")
    try:
        assert eng.model == "tiny+adapter"
        out = eng.complete(MESSAGES, max_tokens=6, temperature=0.8, seed=3)
        assert 0 < out.output_tokens <= 6 and "\n" not in out.text
    finally:
        eng.close()
    with pytest.raises(EngineError, match="engine is closed"):
        eng.complete(MESSAGES)

    (tmp_path / "bad").mkdir()
    with pytest.raises(EngineError, match="not a PEFT adapter"):
        TransformersEngine(folder, adapter=tmp_path / "bad")
    (tmp_path / "bad" / "adapter_config.json").write_text(json.dumps({"peft_type": "NOPE"}))
    with pytest.raises(EngineError, match="cannot load adapter"):
        TransformersEngine(folder, adapter=tmp_path / "bad")


def test_missing_and_broken_models_are_clear_errors(tmp_path) -> None:
    with pytest.raises(EngineError, match="not found"):
        factory(str(tmp_path / "nope"))
    notes = tmp_path / "notes.md"
    notes.write_text("not a model at all")
    with pytest.raises(EngineError, match="not a model"):
        factory(str(notes))
    with pytest.raises(EngineError, match="no config.json"):
        factory(str(tmp_path))
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(EngineError, match="cannot load model"):
        factory(str(truncated))
    with pytest.raises(EngineError, match="unknown device"):
        factory(str(truncated), device="tpu")
