"""The vLLM engine without vLLM: spec handling, request conversion, and the flow against a stand-in module.

vLLM itself needs CUDA; these tests replace the ``vllm`` module with a small fake that records what
the engine asks of it, so they run anywhere (and on a CUDA machine still do not touch the GPU).
"""

from __future__ import annotations

import json
import sys
import types

import pytest

from automem.engines import EngineError
from automem.engines.vllm_engine import (
    MISSING,
    CompletionRequest,
    VLLMEngine,
    as_request,
    factory,
    grammar_kwargs,
    lora_rank,
    sampling_kwargs,
    to_completion,
)

MESSAGES = [{"role": "system", "content": "Play."}, {"role": "user", "content": "Choose."}]
GRAMMAR = 'root ::= "ACT " ("noop" | "left")'


def test_missing_vllm_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(EngineError) as err:
        factory("Qwen/Qwen2.5-0.5B-Instruct")
    assert str(err.value) == MISSING
    with pytest.raises(EngineError, match="needs a model"):
        factory("")


def test_sampling_kwargs() -> None:
    greedy = sampling_kwargs(CompletionRequest(MESSAGES, max_tokens=12, temperature=0, seed=3))
    assert greedy == {"max_tokens": 12, "temperature": 0.0, "seed": 3, "stop": ["\n"], "min_tokens": 1}
    sampled = sampling_kwargs(CompletionRequest(MESSAGES, grammar=GRAMMAR, temperature=0.7), top_p=0.9, top_k=0)
    # with a grammar the grammar ends the reply: no stop string that could cut it
    assert sampled == {"max_tokens": 64, "temperature": 0.7, "top_p": 0.9}


def test_grammar_kwargs_follow_the_vllm_version() -> None:
    class Params:
        def __init__(self, grammar: str) -> None:
            self.grammar = grammar

    new = types.SimpleNamespace(StructuredOutputsParams=Params, GuidedDecodingParams=object)
    kwargs = grammar_kwargs(GRAMMAR, new)
    assert list(kwargs) == ["structured_outputs"] and kwargs["structured_outputs"].grammar == GRAMMAR
    old = types.SimpleNamespace(GuidedDecodingParams=Params)
    assert list(grammar_kwargs(GRAMMAR, old)) == ["guided_decoding"]
    assert grammar_kwargs(None, old) == {}
    with pytest.raises(EngineError, match="no structured outputs"):
        grammar_kwargs(GRAMMAR, types.SimpleNamespace())


def test_lora_rank(tmp_path) -> None:
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 4}))
    assert lora_rank(tmp_path) == 8
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 64}))
    assert lora_rank(tmp_path) == 64
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 1024}))
    with pytest.raises(EngineError, match="above"):
        lora_rank(tmp_path)
    with pytest.raises(EngineError, match="not a PEFT adapter"):
        lora_rank(tmp_path / "nope")


def test_requests_and_outputs_convert() -> None:
    assert as_request({"messages": MESSAGES, "seed": 2}) == CompletionRequest(MESSAGES, seed=2)
    with pytest.raises(EngineError, match="bad completion request"):
        as_request({"messages": MESSAGES, "top_p": 0.5})
    choice = types.SimpleNamespace(text="\nACT noop\nand more", token_ids=[5, 6, 7], finish_reason="stop")
    out = types.SimpleNamespace(outputs=[choice], prompt_token_ids=list(range(30)), num_cached_tokens=None)
    done = to_completion(out, 0.5)
    assert (done.text, done.input_tokens, done.cached_tokens, done.output_tokens) == ("ACT noop", 30, 0, 3)
    out.num_cached_tokens = 16
    assert to_completion(out, 0.5).cached_tokens == 16


@pytest.fixture
def fake_vllm(monkeypatch):
    """A stand-in ``vllm`` package: records the LLM's arguments and answers every chat with "ACT noop"."""
    calls: dict[str, list] = {"init": [], "chat": []}

    class SamplingParams:
        def __init__(self, **kwargs) -> None:
            self.kwargs = kwargs

    class StructuredOutputsParams:
        def __init__(self, grammar: str) -> None:
            self.grammar = grammar

    class LoRARequest:
        def __init__(self, name: str, int_id: int, path: str) -> None:
            self.args = (name, int_id, path)

    class LLM:
        def __init__(self, **kwargs) -> None:
            calls["init"].append(kwargs)

        def chat(self, conversations, *, sampling_params, use_tqdm, lora_request):
            calls["chat"].append((conversations, sampling_params, lora_request))
            return [
                types.SimpleNamespace(
                    outputs=[types.SimpleNamespace(text="ACT noop", token_ids=[1, 2], finish_reason="stop")],
                    prompt_token_ids=[0] * (10 + i),
                    num_cached_tokens=8,
                )
                for i in range(len(conversations))
            ]

    vllm = types.ModuleType("vllm")
    sampling = types.ModuleType("vllm.sampling_params")
    lora = types.ModuleType("vllm.lora")
    lora_request = types.ModuleType("vllm.lora.request")
    vllm.LLM, vllm.SamplingParams, vllm.sampling_params = LLM, SamplingParams, sampling
    sampling.StructuredOutputsParams = StructuredOutputsParams
    lora_request.LoRARequest = LoRARequest
    for name, module in [
        ("vllm", vllm),
        ("vllm.sampling_params", sampling),
        ("vllm.lora", lora),
        ("vllm.lora.request", lora_request),
    ]:
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def test_batched_flow_against_a_fake_vllm(fake_vllm, tmp_path) -> None:
    adapter = tmp_path / "my-lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 16}))
    engine = factory("org/model", lora_path=str(adapter), max_model_len=4096)
    assert isinstance(engine, VLLMEngine) and engine.supports_grammar
    assert engine.model == "org/model+my-lora"
    init = fake_vllm["init"][0]
    assert init["enable_prefix_caching"] is True and init["enable_lora"] is True
    assert (init["max_lora_rank"], init["max_model_len"]) == (16, 4096)

    outs = engine.complete_many(
        [CompletionRequest(MESSAGES, grammar=GRAMMAR, seed=1), {"messages": MESSAGES, "temperature": 0}]
    )
    assert [o.text for o in outs] == ["ACT noop", "ACT noop"]
    assert [(o.input_tokens, o.cached_tokens, o.output_tokens) for o in outs] == [(10, 8, 2), (11, 8, 2)]
    conversations, params, lora = fake_vllm["chat"][0]
    assert conversations == [MESSAGES, MESSAGES]
    assert params[0].kwargs["structured_outputs"].grammar == GRAMMAR and params[0].kwargs["seed"] == 1
    assert "structured_outputs" not in params[1].kwargs and params[1].kwargs["stop"] == ["\n"]
    assert lora.args == ("my-lora", 1, str(adapter))

    single = engine.complete(MESSAGES, grammar=GRAMMAR, max_tokens=8)
    assert single.text == "ACT noop" and fake_vllm["chat"][1][1][0].kwargs["max_tokens"] == 8
    assert engine.complete_many([]) == []
    engine.close()
    with pytest.raises(EngineError, match="closed"):
        engine.complete(MESSAGES)


def test_unconstrained_engine_sends_no_grammar(fake_vllm) -> None:
    engine = factory("org/model", constrained=False)
    assert engine.supports_grammar is False
    engine.complete(MESSAGES, grammar=GRAMMAR)
    assert "structured_outputs" not in fake_vllm["chat"][0][1][0].kwargs


def test_adapter_folder_spec_serves_its_recorded_base_with_the_lora(fake_vllm, tmp_path) -> None:
    base = tmp_path / "base-model"
    base.mkdir()
    adapter = tmp_path / "models" / "spec" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8, "base_model_name_or_path": "elsewhere"}))
    (adapter / "automem.json").write_text(json.dumps({"base": str(base)}))
    engine = factory(str(adapter))
    init = fake_vllm["init"][0]
    # the base recorded at training time wins over PEFT's own note, and the LoRA rides on every request
    assert init["model"] == str(base) and init["enable_lora"] is True and init["max_lora_rank"] == 8
    assert engine.model == "base-model+adapter"
    engine.complete(MESSAGES)
    assert fake_vllm["chat"][0][2].args == ("adapter", 1, str(adapter))
