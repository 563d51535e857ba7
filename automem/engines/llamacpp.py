"""In-process llama.cpp engine (llama-cpp-python), the default.

The prompt is sent as chat messages; llama-cpp-python keeps the KV cache of the previous call and
evaluates only the tokens after the longest common prefix, which is why the agent orders its
prompt from the most stable part to the most volatile. We measure that reuse ourselves (the
library does not report it) by comparing the token ids before and after the call.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from automem.engines.adapters import adapter_base, gguf_lora_for, is_adapter
from automem.engines.base import Completion, EngineError, Message, ToolCall
from automem.engines.bundled import bundled_model_path

GGUF_MAGIC = b"GGUF"


def _common_prefix(a: Any, b: Any) -> int:
    """Length of the shared prefix of two token-id arrays (numpy: a Python loop cost ~0.1 ms/call)."""
    import numpy as np

    n = min(len(a), len(b))
    if n == 0:
        return 0
    differ = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(differ[0]) if differ.size else n


class LlamaCppEngine:
    name = "llamacpp"
    supports_grammar = True

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        lora_path: str | None = None,
        constrained: bool = True,
    ) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise EngineError(f"model file not found: {path}")
        with path.open("rb") as fh:
            if fh.read(4) != GGUF_MAGIC:
                raise EngineError(f"not a GGUF model file: {path}")
        try:
            from llama_cpp import Llama  # heavy: imported only when an engine is built
        except ImportError as exc:  # pragma: no cover - the dependency is declared
            raise EngineError(f"llama-cpp-python is not installed: {exc}") from None
        self.model = path.name if not lora_path else f"{path.name}+{Path(lora_path).parent.name}"
        self.model_path = str(path)
        try:
            self._llm = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads or max(1, os.cpu_count() or 1),
                n_gpu_layers=n_gpu_layers,
                lora_path=lora_path,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise EngineError(f"cannot load model {path}: {exc}") from None
        self._grammars: dict[str, Any] = {}
        # one Llama context is not thread-safe: calls from several agent threads take turns
        self._lock = threading.Lock()
        # constrained=False makes the engine ignore grammars, to exercise the feedback path
        self.supports_grammar = constrained
        self.n_ctx = n_ctx

    def _grammar(self, text: str) -> Any:
        # parsing a grammar costs milliseconds; structures reuse a handful of them per episode
        grammar = self._grammars.get(text)
        if grammar is None:
            from llama_cpp import LlamaGrammar

            try:
                grammar = LlamaGrammar.from_string(text, verbose=False)
            except ValueError as exc:
                raise EngineError(f"invalid grammar: {exc}") from None
            if len(self._grammars) > 64:
                self._grammars.clear()
            self._grammars[text] = grammar
        return grammar

    def complete(
        self,
        messages: list[Message],
        *,
        grammar: str | None = None,
        max_tokens: int = 64,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> Completion:
        with self._lock:
            return self._complete(messages, grammar, max_tokens, temperature, seed)

    def _complete(
        self, messages: list[Message], grammar: str | None, max_tokens: int, temperature: float, seed: int | None
    ) -> Completion:
        llm = self._llm
        before = llm._input_ids[: llm.n_tokens].copy()
        if seed is not None:
            llm.set_seed(seed)
        start = time.perf_counter()
        try:
            out = llm.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]
                grammar=self._grammar(grammar) if grammar else None,
                max_tokens=max_tokens,
                temperature=temperature,
            )
        except ValueError as exc:  # e.g. the prompt exceeds the context window
            raise EngineError(f"llama.cpp call failed: {exc}") from None
        latency = time.perf_counter() - start
        usage = out.get("usage", {})  # type: ignore[union-attr]
        prompt_tokens = int(usage.get("prompt_tokens", 0))
        after = llm._input_ids[:prompt_tokens]
        # llama.cpp always re-evaluates at least the last prompt token
        cached = min(_common_prefix(before, after), max(prompt_tokens - 1, 0))
        choice = out["choices"][0]  # type: ignore[index]
        return Completion(
            text=choice["message"].get("content") or "",
            input_tokens=prompt_tokens,
            cached_tokens=cached,
            output_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=latency,
            finish_reason=choice.get("finish_reason"),
        )

    supports_tools = True

    def complete_tools(
        self,
        messages: list[Message],
        tools: list[dict[str, Any]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.2,
        seed: int | None = None,
    ) -> Completion:
        """One call where the model may answer or ask for ``tools`` (OpenAI tool schemas), through
        llama-cpp-python's ChatML function-calling format rather than the model's own template."""
        from llama_cpp.llama_chat_format import chatml_function_calling

        with self._lock:
            llm = self._llm
            if seed is not None:
                llm.set_seed(seed)
            start = time.perf_counter()
            try:
                out = chatml_function_calling(
                    llama=llm, messages=messages, tools=tools, tool_choice="auto",  # type: ignore[arg-type]
                    temperature=temperature, max_tokens=max_tokens,
                )  # fmt: skip
            except ValueError as exc:
                raise EngineError(f"llama.cpp call failed: {exc}") from None
            latency = time.perf_counter() - start
        usage = out.get("usage", {})  # type: ignore[union-attr]
        choice = out["choices"][0]  # type: ignore[index]
        message = choice["message"]
        calls = [
            ToolCall(c["function"]["name"], c["function"].get("arguments") or "{}")
            for c in message.get("tool_calls") or []
        ]
        return Completion(
            text=message.get("content") or "",
            input_tokens=int(usage.get("prompt_tokens", 0)),
            cached_tokens=0,
            output_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=latency,
            finish_reason=choice.get("finish_reason"),
            tool_calls=calls,
        )

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is not None:
            llm.close()
            self._llm = None  # type: ignore[assignment]


def factory(target: str, **options: object) -> LlamaCppEngine:
    """``llamacpp`` (the bundled model), ``llamacpp:PATH`` (a GGUF file) or ``llamacpp:ADAPTER`` (a
    LoRA folder from ``automem finetune`` on a GGUF base: the base with the adapter as a GGUF LoRA)."""
    if is_adapter(target) and "lora_path" not in options:
        adapter = Path(target).expanduser()
        base = Path(adapter_base(adapter)).expanduser()
        if not base.is_file():
            raise EngineError(
                f"llama.cpp needs a GGUF base, but adapter {adapter} was trained on {base}; "
                "use transformers:ADAPTER or vllm:ADAPTER"
            )
        return LlamaCppEngine(base, lora_path=str(gguf_lora_for(adapter, base)), **options)  # type: ignore[arg-type]
    return LlamaCppEngine(target or bundled_model_path(), **options)  # type: ignore[arg-type]
