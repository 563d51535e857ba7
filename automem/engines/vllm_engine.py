"""In-process vLLM engine (optional GPU extra ``automem[vllm]``): many episodes in one batch.

``complete`` serves one chat like the other engines; ``complete_many`` sends the turns of many
episodes to ``vllm.LLM.chat`` at once, which is where vLLM pays off. Prefix caching is switched
on, so each episode's stable prompt head is computed once and ``RequestOutput.num_cached_tokens``
reports the reuse. Grammars go through vLLM's structured outputs (xgrammar accepts GBNF), with
``StructuredOutputsParams`` (vLLM >= 0.10.2) or the older ``GuidedDecodingParams``, found by
feature detection. A LoRA adapter (``lora_path``) is applied per request with ``LoRARequest``.

vLLM is imported only when an engine is built; the pure helpers below are tested without it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field

from automem.engines.adapters import adapter_base, is_adapter
from automem.engines.base import Completion, EngineError, Message
from automem.engines.options import EngineOptions, takes_options
from automem.engines.transformers_engine import first_line

MISSING = "vllm is not installed: pip install 'automem[vllm]' on a CUDA machine"
# ranks vLLM accepts for max_lora_rank; the adapter's own rank is rounded up to one of them
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


@dataclass
class CompletionRequest:
    """One turn of one episode, as ``Engine.complete`` takes it."""

    messages: list[Message]
    grammar: str | None = None
    max_tokens: int = 64
    temperature: float = 0.7
    seed: int | None = None


def as_request(item: CompletionRequest | Mapping[str, Any]) -> CompletionRequest:
    if isinstance(item, CompletionRequest):
        return item
    unknown = set(item) - {"messages", "grammar", "max_tokens", "temperature", "seed"}
    if unknown or "messages" not in item:
        raise EngineError(f"bad completion request: needs messages, got keys {sorted(item)}")
    return CompletionRequest(**item)


def sampling_kwargs(request: CompletionRequest, *, top_p: float = 0.95, top_k: int = 40) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for a request, less the grammar."""
    kwargs: dict[str, Any] = {
        "max_tokens": int(request.max_tokens),
        "temperature": max(float(request.temperature), 0.0),
    }
    if request.seed is not None:
        kwargs["seed"] = int(request.seed)
    if kwargs["temperature"] > 0:  # greedy decoding ignores them
        kwargs["top_p"] = float(top_p)
        if top_k > 0:
            kwargs["top_k"] = int(top_k)
    if not request.grammar:
        # a command is one line: stop at a newline, but not at one before any text (min_tokens
        # holds stop strings back in vLLM's V1 engine); with a grammar the grammar ends the reply
        kwargs["stop"] = ["\n"]
        kwargs["min_tokens"] = 1
    return kwargs


def grammar_kwargs(grammar: str | None, sampling_module: Any) -> dict[str, Any]:
    """The ``SamplingParams`` keyword that carries a GBNF grammar in this vLLM version."""
    if not grammar:
        return {}
    params = getattr(sampling_module, "StructuredOutputsParams", None)
    if params is not None:  # vLLM >= 0.10.2; the guided_* spellings were removed in 0.12
        return {"structured_outputs": params(grammar=grammar)}
    params = getattr(sampling_module, "GuidedDecodingParams", None)
    if params is not None:
        return {"guided_decoding": params(grammar=grammar)}
    raise EngineError("this vllm version has no structured outputs; upgrade vllm or run with grammars off")


def lora_rank(adapter: Path) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds the adapter's rank ``r``."""
    try:
        config = json.loads((adapter / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise EngineError(f"not a PEFT adapter folder: {adapter} ({exc})") from None
    r = int(config.get("r") or 8)
    for rank in LORA_RANKS:
        if rank >= r:
            return rank
    raise EngineError(f"LoRA rank {r} is above vLLM's largest max_lora_rank {LORA_RANKS[-1]}")


def to_completion(output: Any, latency_s: float) -> Completion:
    """Our Completion from a ``vllm.RequestOutput`` (duck-typed, so tests need no vLLM)."""
    choice = output.outputs[0] if output.outputs else None
    text, _ = first_line(choice.text if choice else "")
    prompt_ids = getattr(output, "prompt_token_ids", None) or []
    cached = getattr(output, "num_cached_tokens", None)  # None in versions that do not report it
    return Completion(
        text=text.strip(),
        input_tokens=len(prompt_ids),
        cached_tokens=int(cached or 0),
        output_tokens=len(choice.token_ids) if choice else 0,
        latency_s=latency_s,
        finish_reason=getattr(choice, "finish_reason", None),
    )


class VLLMEngine:
    name = "vllm"
    supports_grammar = True

    def __init__(
        self,
        model: str,
        *,
        lora_path: str | None = None,
        constrained: bool = True,
        top_p: float = 0.95,
        top_k: int = 40,
        max_model_len: int | None = 8192,
        gpu_memory_utilization: float = 0.85,
        dtype: str = "auto",
        seed: int = 0,
        **llm_kwargs: Any,
    ) -> None:
        if not model:
            raise EngineError("vllm needs a model: vllm:PATH_OR_HF_ID")
        try:
            import vllm  # heavy, CUDA-only: imported only when an engine is built
            from vllm import sampling_params as sampling_module
        except ImportError:
            raise EngineError(MISSING) from None
        self._vllm = vllm
        self._sampling_module = sampling_module
        local = Path(model).expanduser()
        self.model = local.name if local.exists() else model
        self._lora: Any = None
        if lora_path:
            adapter = Path(lora_path).expanduser()
            llm_kwargs.setdefault("enable_lora", True)
            llm_kwargs.setdefault("max_lora_rank", lora_rank(adapter))
            from vllm.lora.request import LoRARequest

            self._lora = LoRARequest(adapter.name, 1, str(adapter))
            self.model = f"{self.model}+{adapter.name}"
        if max_model_len:
            llm_kwargs.setdefault("max_model_len", int(max_model_len))
        try:
            self._llm = vllm.LLM(
                model=str(local) if local.exists() else model,
                dtype=dtype,
                seed=seed,
                gpu_memory_utilization=float(gpu_memory_utilization),
                enable_prefix_caching=True,
                **llm_kwargs,
            )
        except Exception as exc:  # vLLM raises many kinds (ValueError, RuntimeError, OSError...)
            lines = str(exc).strip().splitlines()
            raise EngineError(f"cannot load {model} in vllm: {lines[0] if lines else type(exc).__name__}") from None
        self.supports_grammar = constrained
        self._top_p = float(top_p)
        self._top_k = int(top_k)

    def _params(self, request: CompletionRequest) -> Any:
        kwargs = sampling_kwargs(request, top_p=self._top_p, top_k=self._top_k)
        if self.supports_grammar:
            kwargs.update(grammar_kwargs(request.grammar, self._sampling_module))
        return self._vllm.SamplingParams(**kwargs)

    def complete_many(self, requests: Sequence[CompletionRequest | Mapping[str, Any]]) -> list[Completion]:
        """One completion per request, generated together; each reports the batch's wall time."""
        if self._llm is None:
            raise EngineError("engine is closed")
        batch = [as_request(r) for r in requests]
        if not batch:
            return []
        conversations = [[{"role": m["role"], "content": str(m["content"])} for m in r.messages] for r in batch]
        params = [self._params(r) for r in batch]
        start = time.perf_counter()
        try:
            outputs = self._llm.chat(
                conversations,
                sampling_params=params,
                use_tqdm=False,
                lora_request=self._lora,
            )
        except Exception as exc:  # e.g. a prompt longer than max_model_len, a grammar xgrammar rejects
            lines = str(exc).strip().splitlines()
            raise EngineError(f"vllm call failed: {lines[0] if lines else type(exc).__name__}") from None
        latency = time.perf_counter() - start
        if len(outputs) != len(batch):
            raise EngineError(f"vllm returned {len(outputs)} outputs for {len(batch)} requests")
        return [to_completion(out, latency) for out in outputs]

    def complete(
        self,
        messages: list[Message],
        *,
        grammar: str | None = None,
        max_tokens: int = 64,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> Completion:
        request = CompletionRequest(messages, grammar, max_tokens, temperature, seed)
        return self.complete_many([request])[0]

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        self._llm = None
        if llm is None:
            return
        # newer vLLM stops its engine-core process on shutdown; older ones on garbage collection
        engine = getattr(llm, "llm_engine", None)
        for owner, method in ((llm, "shutdown"), (getattr(engine, "engine_core", None), "shutdown")):
            stop = getattr(owner, method, None)
            if callable(stop):
                try:
                    stop()
                except Exception:
                    pass
                break
        del llm


class VLLMOptions(EngineOptions):
    # vllm.LLM takes many more keyword arguments (tensor_parallel_size, quantization, ...): they pass
    # through, and vLLM itself refuses the ones it does not know
    model_config = ConfigDict(extra="allow")

    lora_path: str | Path | None = Field(None, description="a LoRA adapter folder (a LoRARequest)")
    constrained: bool = Field(True, description="grammars constrain the output (guided decoding)")
    top_p: float = Field(0.95, gt=0, le=1, description="sampling: nucleus probability")
    top_k: int = Field(40, description="sampling: the k most likely tokens (-1: all)")
    max_model_len: int | None = Field(8192, ge=256, description="context length")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="share of GPU memory vLLM may take")
    dtype: str = Field("auto", description="weights' dtype")
    seed: int = Field(0, description="vLLM's own seed")


@takes_options(VLLMOptions, "vllm")
def factory(target: str, **options: Any) -> VLLMEngine:
    """``vllm:MODEL`` where MODEL is a local model folder or a Hugging Face id, or ``vllm:ADAPTER``
    (a LoRA folder from ``automem finetune``): its base with the adapter as a ``LoRARequest``."""
    if is_adapter(target) and "lora_path" not in options:
        adapter = Path(target).expanduser()
        base = adapter_base(adapter)
        if base.endswith(".gguf"):
            # vLLM's GGUF loading is experimental and has no LoRA: give it the base as a model folder
            from automem.engines.transformers_engine import hf_folder_of

            base = str(hf_folder_of(Path(base).expanduser(), adapter.parent.parent / "bases"))
        return VLLMEngine(base, lora_path=str(adapter), **options)
    return VLLMEngine(target, **options)
