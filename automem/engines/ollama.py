"""Engine for an Ollama server through the official ``ollama`` client and its native chat API.

Spec: ``ollama:MODEL`` (e.g. ``ollama:qwen2.5:7b``; empty: the first model the server lists). The
host comes from the ``host`` option, else ``OLLAMA_HOST``, else http://127.0.0.1:11434.

Ollama enforces JSON schemas (``format``) but takes no GBNF grammar, so ``supports_grammar`` is
False: replies are asked for as ``{"command": "<one line>"}`` and unwrapped, and the agent's parser
gives feedback on a bad command. Ollama does not report prompt-cache hits: ``cached_tokens`` is 0.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from pydantic import Field

from automem.engines.base import Completion, EngineError, Message, api_key_from_env
from automem.engines.openai_http import COMMAND_SCHEMA, JSON_OVERHEAD_TOKENS, HttpOptions, unwrap_command
from automem.engines.options import takes_options
from automem.engines.retry import RetryPolicy, Transient, one_line, status_is_retryable, unexpected, with_retries

log = logging.getLogger(__name__)

DEFAULT_HOST = "http://127.0.0.1:11434"
MODES = ("json_schema", "none")


class OllamaEngine:
    name = "ollama"
    supports_grammar = False

    def __init__(
        self,
        model: str = "",
        *,
        host: str | None = None,
        timeout: float = 120.0,
        structured: str = "json_schema",
        num_ctx: int | None = None,
        keep_alive: str | float | None = None,
        api_key_env: str | None = None,
        retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        if structured not in MODES:
            raise EngineError(f"unknown structured mode {structured!r} for ollama; choose one of {', '.join(MODES)}")
        if timeout <= 0:
            raise EngineError(f"timeout must be positive, got {timeout}")
        try:
            import httpx
            import ollama  # heavy: imported only when an engine is built
        except ImportError as exc:  # pragma: no cover - the dependency is declared
            raise EngineError(f"the ollama package is not installed: {exc}") from None
        self._ollama = ollama
        self._httpx = httpx
        self.host = (host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST).rstrip("/")
        self.api_key_env = api_key_env
        headers: dict[str, str] = {}
        if api_key_env:  # e.g. an Ollama behind a proxy that wants a bearer token
            headers["Authorization"] = f"Bearer {api_key_from_env(api_key_env)}"
        self.timeout = float(timeout)
        self.structured = structured
        self.num_ctx = num_ctx
        self.keep_alive = keep_alive
        self.policy = RetryPolicy(retries=int(retries), backoff_s=float(backoff_s), max_backoff_s=float(max_backoff_s))
        self._where = f"ollama server {self.host}"
        self._client = ollama.Client(host=self.host, timeout=self.timeout, headers=headers or None)
        try:
            self.model = model.strip() or self._first_model()
        except EngineError:
            self._client.close()
            raise

    def __repr__(self) -> str:
        key = f", api_key_env={self.api_key_env!r}" if self.api_key_env else ""
        return f"OllamaEngine({self.model!r}, host={self.host!r}, structured={self.structured!r}{key})"

    __str__ = __repr__

    def _call(self, fn: Any, **kwargs: Any) -> Any:
        ollama, httpx = self._ollama, self._httpx

        def attempt() -> Any:
            try:
                return fn(**kwargs)
            except ollama.ResponseError as exc:
                detail = one_line(exc.error)
                if status_is_retryable(exc.status_code):
                    raise Transient(f"HTTP {exc.status_code}: {detail}") from None
                raise EngineError(f"{self._where}: request rejected (HTTP {exc.status_code}: {detail})") from None
            except ConnectionError:  # the client's rewording of httpx.ConnectError
                raise Transient("cannot connect (is `ollama serve` running there?)") from None
            except httpx.TimeoutException:
                raise Transient(f"no answer within {self.timeout:g} s") from None
            except httpx.TransportError as exc:  # dropped connections and the like
                raise Transient(f"connection failed ({one_line(exc, 120)})") from None
            except ollama.RequestError as exc:
                raise EngineError(f"{self._where}: {one_line(exc.error)}") from None
            except Exception as exc:
                raise unexpected(exc) from None

        return with_retries(attempt, self.policy, where=self._where)

    def _first_model(self) -> str:
        listing = self._call(self._client.list)
        names = [m.model for m in listing.models if m.model]
        if not names:
            raise EngineError(f"{self._where}: has no models; run `ollama pull MODEL` or give ollama:MODEL")
        return names[0]

    def complete(
        self,
        messages: list[Message],
        *,
        grammar: str | None = None,  # Ollama takes no GBNF grammar: supports_grammar is False
        max_tokens: int = 64,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> Completion:
        json_mode = self.structured == "json_schema"
        options: dict[str, Any] = {
            "num_predict": max_tokens + (JSON_OVERHEAD_TOKENS if json_mode else 0),
            "temperature": temperature,
        }
        if seed is not None:
            options["seed"] = seed
        if self.num_ctx:
            # Ollama's default context is small and it truncates silently; long agent prompts need more
            options["num_ctx"] = self.num_ctx
        timing: dict[str, float] = {}

        def chat(**kw: Any) -> Any:
            start = time.perf_counter()
            out = self._client.chat(**kw)
            timing["latency"] = time.perf_counter() - start
            return out

        out = self._call(
            chat,
            model=self.model,
            messages=[{"role": m["role"], "content": str(m["content"])} for m in messages],
            format=COMMAND_SCHEMA if json_mode else None,
            options=options,
            keep_alive=self.keep_alive,
            stream=False,
        )
        text = out.message.content or ""
        if not text.strip() and out.done_reason != "length":
            raise EngineError(f"{self._where}: the reply is empty (done_reason {out.done_reason!r})")
        if json_mode:
            log.debug("%s: raw JSON reply %r", self._where, text)
            text = unwrap_command(text)
        return Completion(
            text=text,
            input_tokens=int(out.prompt_eval_count or 0),
            cached_tokens=0,  # Ollama reports no prompt-cache hits
            output_tokens=int(out.eval_count or 0),
            latency_s=timing.get("latency", 0.0),
            finish_reason=out.done_reason,
        )

    def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()


class OllamaOptions(HttpOptions):
    host: str | None = Field(None, description="the Ollama server (default $OLLAMA_HOST or 127.0.0.1:11434)")
    structured: str = Field("json_schema", description="how output is constrained: json_schema or none")
    num_ctx: int | None = Field(None, ge=256, description="context length the server loads the model with")
    keep_alive: str | float | None = Field(None, description="how long the server keeps the model loaded")


@takes_options(OllamaOptions, "ollama")
def factory(target: str, **options: object) -> OllamaEngine:
    """``ollama:MODEL`` -> OllamaEngine; options are the constructor's keyword arguments."""
    opts: dict[str, Any] = dict(options)
    model = target.strip() or str(opts.pop("model", "") or "")
    opts.pop("model", None)
    return OllamaEngine(model, **opts)
