"""In-process llama.cpp engine (xllamacpp), the default.

xllamacpp embeds llama.cpp's own C++ server and ships prebuilt wheels (CPU, CUDA, ROCm, Vulkan),
so the default install needs no compiler. Its CPU wheels are built without AMX and AVX-512, so the
AMX repacking crash cannot happen with them; where a build of it may carry AMX kernels, the
engine still turns the extra buffer types off on AMX CPUs (see ``automem.engines.cpu``).

Requests go straight to the server's handlers (``handle_chat_completions``), not over HTTP. The
server keeps a prompt cache per slot and reports the reused prefix as ``cached_tokens``, which is
why the agent orders its prompt from the most stable part to the most volatile. The same class
serves the model over the OpenAI-compatible HTTP API for ``automem serve``.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.request
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field

from automem.engines.adapters import adapter_base, gguf_lora_for, is_adapter
from automem.engines.base import Completion, EngineError, Message, ToolCall
from automem.engines.bundled import bundled_model_path
from automem.engines.cpu import cpu_info
from automem.engines.options import EngineOptions, takes_options

GGUF_MAGIC = b"GGUF"
DOCTOR_HINT = "run `automem doctor` to check this machine"

# For chat templates that know no tools (SmolLM2's among them) llama.cpp ignores the ``tools``
# field, so the engine offers them in the system message and holds the answer to either one call
# per the tools' schemas or a plain answer (an LLGuidance grammar, which the bundled build has).
_TOOL_PROMPT = (
    "\n\nYou may call one of these functions before you answer:\n{tools}\n"
    'To call one, answer only <tool_call>{{"name": NAME, "arguments": {{...}}}}</tool_call>; '
    "to answer without a call, begin with message:"
)
# both branches open with a marker, so a small model's first token is the decision (as
# llama-cpp-python's ChatML function calling does with "functions." and "message:")
_TOOL_OPEN, _TOOL_CLOSE, _MESSAGE = "<tool_call>", "</tool_call>", "message:"


def _error_text(reply: Any) -> str | None:
    """The server's error message when a handler answered with an error object."""
    if isinstance(reply, dict) and "error" in reply:
        error = reply["error"]
        return str(error.get("message", error)) if isinstance(error, dict) else str(error)
    return None


def plain_messages(messages: list[Message]) -> list[dict[str, str]]:
    """Contents as plain strings: SmolLM2's template fails on lists of content parts."""
    return [{"role": m["role"], "content": str(m["content"])} for m in messages]


def tool_call_grammar(tools: list[dict[str, Any]]) -> str:
    """An LLGuidance grammar: one ``<tool_call>`` whose JSON matches a tool's schema, or plain text."""
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t["function"]["name"]},
                "arguments": t["function"].get("parameters") or {"type": "object"},
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    schema = json.dumps({"oneOf": options}, separators=(",", ":"))
    return (
        "%llguidance {}\n"
        f'start: call | answer\ncall: "{_TOOL_OPEN}" json "{_TOOL_CLOSE}"\njson: %json {schema}\n'
        f'answer: "{_MESSAGE}" /[^<]*/\n'
    )


def parse_tool_call(text: str) -> ToolCall | None:
    stripped = text.strip()
    if not stripped.startswith(_TOOL_OPEN):
        return None
    body = stripped[len(_TOOL_OPEN) :].split(_TOOL_CLOSE, 1)[0]
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    return ToolCall(data["name"], json.dumps(data.get("arguments") or {}))


#: the key cache types an engine may ask for (llama.cpp's names)
CacheType = Literal["f32", "f16", "bf16", "q8_0"]
CACHE_TYPES: tuple[str, ...] = get_args(CacheType)


class LlamaCppEngine:
    name = "llamacpp"
    supports_grammar = True
    supports_tools = True

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        lora_path: str | None = None,
        constrained: bool = True,
        n_parallel: int = 1,
        host: str | None = None,
        port: int = 0,
        api_key: str | None = None,
        alias: str | None = None,
        flash_attn: bool | None = None,
        poll: int | None = None,
        cache_type_k: CacheType | None = None,
    ) -> None:
        """``host``/``port``/``api_key`` matter only to ``automem serve``: an engine used in-process
        listens on a random local port that a random key closes, so nothing else can use it."""
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise EngineError(f"model file not found: {path}")
        with path.open("rb") as fh:
            if fh.read(4) != GGUF_MAGIC:
                raise EngineError(f"not a GGUF model file: {path}")
        if n_parallel < 1:
            raise EngineError(f"n_parallel must be at least 1, got {n_parallel}")
        try:
            import xllamacpp as xlc  # heavy: imported only when an engine is built
        except ImportError as exc:  # pragma: no cover - the dependency is declared
            raise EngineError(f"xllamacpp is not installed ({exc}); {DOCTOR_HINT}") from None
        self.model = path.name if not lora_path else f"{path.name}+{Path(lora_path).parent.name}"
        self.model_path = str(path)
        threads = int(n_threads or max(1, os.cpu_count() or 1))
        params = xlc.CommonParams()
        params.model.path = str(path)
        params.model_alias = {alias or path.name}  # a set of names in this binding
        params.n_ctx = int(n_ctx) * n_parallel  # the context is shared by the slots: n_ctx each
        params.n_parallel = n_parallel
        params.n_gpu_layers = int(n_gpu_layers)
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        # llama.cpp's threads busy-wait (poll 50) between graph runs: with fewer threads than cores
        # the cores are shared with other workers, and spinning threads take their time
        # (bench/step_floor.py --workers: two 1-thread workers on 2 cores, 0.70 -> 0.92 calls/s)
        cores = os.cpu_count() or 1
        poll = int(poll if poll is not None else (0 if threads < cores else 50))
        params.cpuparams.poll = params.cpuparams_batch.poll = poll
        # on the CPU llama.cpp's flash attention is slower once the context is long (bundled model,
        # 3,000 tokens: 32 ms per decoded token with it, 18-22 without); on a GPU it is left to llama.cpp
        if flash_attn is None and n_gpu_layers == 0:
            flash_attn = False
        params.flash_attn_type = (
            xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_AUTO
            if flash_attn is None
            else xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if flash_attn
            else xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        # keys cached as q8_0 on the CPU: attention's K·Q then runs on llama.cpp's integer dot
        # products, and at the 1,500-2,500-token contexts of a transcript that is most of the
        # per-token cost left (bundled model, 2 cores: prefill 5.5 ms per token against 6.2-7.4 with
        # f16, Crafter seeds 10-11; docs/speed.md). Values stay f16: quantized V needs flash attention.
        if cache_type_k is None and n_gpu_layers == 0:
            cache_type_k = "q8_0"
        if cache_type_k is not None:
            if cache_type_k not in CACHE_TYPES:
                raise EngineError(f"cache_type_k must be one of {', '.join(CACHE_TYPES)}, got {cache_type_k!r}")
            params.cache_type_k = getattr(xlc.ggml_type, f"GGML_TYPE_{cache_type_k.upper()}")
        params.warmup = False  # a warm-up decode costs a second at every load and changes nothing
        params.verbosity = int(os.environ.get("AUTOMEM_LLAMA_VERBOSITY", "-1"))  # the TUI owns stderr
        params.n_threads_http = 2 if host is None else max(2, n_parallel + 1)
        params.hostnames = [host or "127.0.0.1"]
        params.port = int(port)
        if cpu_info().has_amx:
            params.no_extra_bufts = True  # llama.cpp's AMX repacking segfaults at the first inference
        self._key = api_key if host is not None else secrets.token_hex(16)
        if self._key:
            params.api_keys = [self._key]
        if lora_path:
            params.lora_adapters = [xlc.CommonAdapterLoraInfo(str(lora_path), 1.0)]
        try:
            self._server: Any = xlc.Server(params)
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"cannot load model {path}: {exc}; {DOCTOR_HINT}") from None
        self.url = str(self._server.listening_address)
        self.supports_grammar = constrained  # False: grammars ignored, to exercise the feedback path
        self.n_ctx = int(n_ctx)
        self.n_parallel = n_parallel
        self._template_tools: bool | None = None

    # -- the calls --------------------------------------------------------------------------------
    def _chat(self, request: dict[str, Any]) -> tuple[dict[str, Any], float]:
        server = self._server
        if server is None:
            raise EngineError("the llama.cpp engine is closed")
        start = time.perf_counter()
        try:
            reply = server.handle_chat_completions(request)
        except Exception as exc:  # the binding raises for requests it cannot even parse
            raise EngineError(f"llama.cpp call failed: {exc}") from None
        latency = time.perf_counter() - start
        error = _error_text(reply)
        if error is not None:
            raise EngineError(f"llama.cpp refused the call: {error}")
        if not isinstance(reply, dict) or not reply.get("choices"):
            raise EngineError(f"llama.cpp answered without choices: {str(reply)[:200]}")
        return reply, latency

    @staticmethod
    def _completion(reply: dict[str, Any], latency: float, text: str, calls: list[ToolCall]) -> Completion:
        usage = reply.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        choice = reply["choices"][0]
        return Completion(
            text=text,
            input_tokens=int(usage.get("prompt_tokens", 0)),
            cached_tokens=int(details.get("cached_tokens", 0)),
            output_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=latency,
            finish_reason=choice.get("finish_reason"),
            tool_calls=calls,
        )

    def _request(
        self, messages: list[dict[str, str]], grammar: str | None, max_tokens: int, temperature: float, seed: int | None
    ) -> dict[str, Any]:
        """A chat request with the prompt cache on, the grammar where the engine honours one."""
        request: dict[str, Any] = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "cache_prompt": True,
        }
        if grammar and self.supports_grammar:
            request["grammar"] = grammar
        if seed is not None:
            request["seed"] = int(seed)
        return request

    def complete(
        self,
        messages: list[Message],
        *,
        grammar: str | None = None,
        max_tokens: int = 64,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> Completion:
        request = self._request(plain_messages(messages), grammar, max_tokens, temperature, seed)
        reply, latency = self._chat(request)
        message = reply["choices"][0].get("message") or {}
        return self._completion(reply, latency, message.get("content") or "", [])

    def complete_line(
        self,
        messages: list[Message],
        *,
        prefix: str = "",
        grammar: str | None = None,
        max_tokens: int = 64,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> Completion:
        """A one-line answer that starts with ``prefix`` (sent as the start of the assistant's turn,
        so its tokens are prefilled with the prompt instead of decoded one by one; ``grammar``
        constrains what follows). The newline ends the call: the server stops there instead of
        decoding the end-of-text token the grammar would force next. The text returned includes
        the prefix; its output tokens do not."""
        plain = plain_messages(messages)
        if prefix:
            plain.append({"role": "assistant", "content": prefix})  # llama.cpp continues a final assistant turn
        request = self._request(plain, grammar, max_tokens, temperature, seed)
        request["stop"] = ["\n"]
        reply, latency = self._chat(request)
        content = (reply["choices"][0].get("message") or {}).get("content") or ""
        # the server answers with the whole assistant turn, prefix included
        text = content if content.startswith(prefix) else prefix + content
        return self._completion(reply, latency, text, [])

    def template_supports_tools(self) -> bool:
        """Whether the model's chat template renders tools (the server's /props says)."""
        if self._template_tools is None:
            request = urllib.request.Request(f"{self.url}/props", headers={"Authorization": f"Bearer {self._key}"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    caps = json.load(response).get("chat_template_caps") or {}
            except (OSError, ValueError):
                caps = {}
            self._template_tools = bool(caps.get("supports_tools"))
        return self._template_tools

    def complete_tools(
        self,
        messages: list[Message],
        tools: list[dict[str, Any]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.2,
        seed: int | None = None,
    ) -> Completion:
        """One call where the model may answer or call one of ``tools`` (OpenAI tool schemas):
        through the chat template where it knows tools, else offered in the system message."""
        plain = plain_messages(messages)
        request: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature}
        if seed is not None:
            request["seed"] = int(seed)
        if self.template_supports_tools():
            reply, latency = self._chat({**request, "messages": plain, "tools": tools, "tool_choice": "auto"})
            message = reply["choices"][0].get("message") or {}
            calls = [
                ToolCall(c["function"]["name"], c["function"].get("arguments") or "{}")
                for c in message.get("tool_calls") or []
            ]
            return self._completion(reply, latency, message.get("content") or "", calls)
        listing = "\n".join(json.dumps(t["function"]) for t in tools)
        hint = _TOOL_PROMPT.format(tools=listing)
        if plain and plain[0]["role"] == "system":
            plain = [{"role": "system", "content": plain[0]["content"] + hint}, *plain[1:]]
        else:
            plain = [{"role": "system", "content": hint.strip()}, *plain]
        reply, latency = self._chat({**request, "messages": plain, "grammar": tool_call_grammar(tools)})
        text = (reply["choices"][0].get("message") or {}).get("content") or ""
        call = parse_tool_call(text)
        answer = "" if call else text.strip().removeprefix(_MESSAGE).strip()
        return self._completion(reply, latency, answer, [call] if call else [])

    def close(self) -> None:
        # dropping the server stops its threads and frees the model (the binding has no close())
        self._server = None


class LlamaCppOptions(EngineOptions):
    n_ctx: int = Field(4096, ge=256, description="context length in tokens")
    n_threads: int | None = Field(None, ge=1, description="CPU threads (default: the cores, split between workers)")
    n_gpu_layers: int = Field(0, description="layers offloaded to a GPU (-1: all)")
    lora_path: str | Path | None = Field(None, description="a GGUF LoRA applied to the model")
    constrained: bool = Field(True, description="GBNF grammars constrain the output")
    n_parallel: int = Field(1, ge=1, description="server slots (parallel requests)")
    host: str | None = Field(None, description="automem serve: the address to listen on")
    port: int = Field(0, ge=0, le=65535, description="automem serve: the port (0: any free one)")
    api_key: str | None = Field(None, description="automem serve: the key clients must send")
    alias: str | None = Field(None, description="automem serve: the model name the server reports")
    flash_attn: bool | None = Field(
        None, description="flash attention (default: off on the CPU, llama.cpp's choice on a GPU)"
    )
    poll: int | None = Field(
        None, ge=0, le=100, description="threads' busy-wait, 0-100 (default: 0 when workers share the cores, else 50)"
    )
    cache_type_k: CacheType | None = Field(
        None, description="the key cache's type (default: q8_0 on the CPU, llama.cpp's f16 on a GPU)"
    )


@takes_options(LlamaCppOptions, "llamacpp")
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
