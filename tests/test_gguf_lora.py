"""The PEFT -> GGUF LoRA conversion: llama.cpp with the converted adapter must move the model's
logits the way transformers with the PEFT adapter does (real SmolLM2 GGUF, real llama.cpp)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("peft")
pytest.importorskip("gguf")
torch = pytest.importorskip("torch")

from automem.engines import EngineError, make_engine  # noqa: E402
from automem.engines.bundled import bundled_model_path  # noqa: E402
from automem.engines.gguf_lora import ConversionError, convert_adapter  # noqa: E402

TEXT = "The memory folder holds notes about the world: trees give wood, stone needs a pickaxe."


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A LoRA on all four attention projections with random A and B (an untrained LoRA's B is zero
    and would prove nothing), and transformers' logits on TEXT with and without it."""
    from peft import LoraConfig, get_peft_model

    from automem.engines.transformers_engine import load_pretrained, unmark_gguf

    base = bundled_model_path()
    tokenizer, model = load_pretrained(base.parent, base.name, torch.float32)
    unmark_gguf(model)
    torch.manual_seed(0)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        init_lora_weights=False, task_type="CAUSAL_LM",
    )  # fmt: skip
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                # strong enough to change some next-token choices, well above llama.cpp's Q4 noise
                param.mul_(0.5)
    folder = tmp_path_factory.mktemp("lora") / "adapter"
    peft_model.save_pretrained(str(folder))
    (folder / "automem.json").write_text(json.dumps({"base": str(base)}), encoding="utf-8")
    ids = tokenizer(TEXT)["input_ids"]
    with torch.no_grad():
        with_lora = peft_model(torch.tensor([ids])).logits[0].numpy()
        with peft_model.disable_adapter():
            without = peft_model(torch.tensor([ids])).logits[0].numpy()
    return {"folder": folder, "ids": ids, "with": with_lora, "without": without, "base": base}


TOP = 20  # next-token log-probabilities llama.cpp reports per prefix


def _llamacpp_top_logprobs(model: Path, ids: list[int], lora: Path | None) -> list[dict[int, float]]:
    """For each prefix ids[:k], llama.cpp's TOP most likely next tokens and their log-probabilities
    (its server reports those, not whole logit rows)."""
    from automem.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(model, lora_path=str(lora) if lora else None, n_ctx=256, n_threads=1)
    try:
        out = []
        for k in range(1, len(ids)):
            request = {"prompt": ids[:k], "max_tokens": 1, "n_probs": TOP, "temperature": 0, "cache_prompt": False}
            reply = engine._server.handle_completions(request)
            top = reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            out.append({int(t["id"]): float(t["logprob"]) for t in top})
        return out
    finally:
        engine.close()


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


@pytest.mark.model
def test_llamacpp_with_the_converted_lora_moves_like_transformers_with_peft(adapter: dict) -> None:
    out = convert_adapter(adapter["folder"], adapter["base"])
    assert out == adapter["folder"] / "adapter.gguf" and out.stat().st_size > 0
    assert not list(adapter["folder"].glob("*.partial"))
    ids = adapter["ids"]
    base_cpp = _llamacpp_top_logprobs(adapter["base"], ids, None)
    lora_cpp = _llamacpp_top_logprobs(adapter["base"], ids, out)
    hf_with, hf_without = _log_softmax(adapter["with"]), _log_softmax(adapter["without"])
    delta_hf, delta_cpp, agree = [], [], []
    for k, (base_top, lora_top) in enumerate(zip(base_cpp, lora_cpp, strict=True)):
        for token in base_top.keys() & lora_top.keys():  # tokens both runs rank in their top 20
            delta_cpp.append(lora_top[token] - base_top[token])
            delta_hf.append(hf_with[k, token] - hf_without[k, token])
        agree.append(max(lora_top, key=lora_top.get) == int(adapter["with"][k].argmax()))
    delta_hf_a, delta_cpp_a = np.array(delta_hf), np.array(delta_cpp)
    assert len(delta_hf) > 10 * len(base_cpp)
    # the same change: a missing q/k row permutation gives a correlation near 0, a wrong scale a
    # norm ratio far from 1 (llama.cpp's Q4 weights add some noise)
    assert np.corrcoef(delta_hf_a, delta_cpp_a)[0, 1] > 0.9
    assert 0.8 < np.linalg.norm(delta_cpp_a) / np.linalg.norm(delta_hf_a) < 1.25
    changed = adapter["with"].argmax(-1) != adapter["without"].argmax(-1)
    assert changed.any(), "the adapter should change some next-token choices"
    assert np.mean(agree) >= 0.9


@pytest.mark.model
def test_llamacpp_spec_on_an_adapter_folder_loads_base_and_lora(adapter: dict) -> None:
    engine = make_engine(f"llamacpp:{adapter['folder']}", n_ctx=512, n_threads=1)
    try:
        assert engine.model == f"{adapter['base'].name}+{adapter['folder'].name}"
        reply = engine.complete([{"role": "user", "content": "Say hi."}], max_tokens=4, temperature=0.0)
        assert reply.output_tokens > 0
    finally:
        engine.close()


def _fake_adapter(folder: Path, config: dict, tensors: dict[str, np.ndarray]) -> Path:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "lora_alpha": 8, **config}))
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    return folder


def test_adapters_that_cannot_be_expressed_are_refused_with_the_reason(tmp_path: Path) -> None:
    base = bundled_model_path()
    a = np.zeros((4, 576), np.float32)
    b = np.zeros((576, 4), np.float32)
    layer0 = "base_model.model.model.layers.0.self_attn.q_proj"
    good = {f"{layer0}.lora_A.weight": a, f"{layer0}.lora_B.weight": b}
    with pytest.raises(ConversionError, match="DoRA"):
        convert_adapter(_fake_adapter(tmp_path / "dora", {"use_dora": True}, good), base)
    with pytest.raises(ConversionError, match="one alpha"):
        convert_adapter(_fake_adapter(tmp_path / "alphas", {"alpha_pattern": {"q_proj": 4}}, good), base)
    missing = {"base_model.model.model.layers.99.self_attn.q_proj.lora_A.weight": a}
    with pytest.raises(ConversionError, match="no tensor in the base"):
        convert_adapter(_fake_adapter(tmp_path / "layer99", {}, missing), base)
    with pytest.raises(ConversionError, match="lacks its A or B"):
        convert_adapter(_fake_adapter(tmp_path / "half", {}, {f"{layer0}.lora_A.weight": a}), base)
    with pytest.raises(ConversionError, match="no adapter_config.json"):
        convert_adapter(tmp_path, base)
    # nothing half-written is left behind by a refused conversion
    assert not list(tmp_path.rglob("*.gguf*"))


def test_llamacpp_spec_refuses_an_adapter_trained_on_a_model_folder(tmp_path: Path) -> None:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8}))
    (folder / "automem.json").write_text(json.dumps({"base": str(tmp_path / "hf-model")}))
    with pytest.raises(EngineError, match="needs a GGUF base"):
        make_engine(f"llamacpp:{folder}")
