"""Engine for any OpenAI-compatible chat server (vLLM, llama-cpp-python's server, LM Studio, hosted APIs).

Spec: ``openai:URL#MODEL``, e.g. ``openai:http://127.0.0.1:8000/v1#smollm2``; without ``#MODEL`` the
first model the server lists is used. Grammar support differs per server, so the way output is
structured is a mode (option ``structured``):

- ``grammar``: a top-level ``grammar`` field holding the GBNF text (llama-cpp-python's server and
  llama.cpp's ``llama-server``);
- ``vllm``: ``structured_outputs: {"grammar": ...}`` (vLLM >= 0.10.2, the only form since 0.12);
- ``vllm_guided``: ``guided_grammar`` (vLLM before 0.12);
- ``json_schema``: ``response_format`` with a schema ``{"command": string}``, unwrapped to the command
  line; the grammar is not enforced, so ``supports_grammar`` is False;
- ``none``: plain text; the agent's parser gives feedback on invalid output;
- ``auto`` (default): probe once, lazily, in the order above and keep the first mode that visibly
  constrains a tiny request. Servers silently ignore fields they do not know, so a probe passes
  only when the output is exactly what the probe's grammar (or schema) allows.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field

from automem.engines.base import Completion, EngineError, Message, ToolCall, api_key_from_env
from automem.engines.options import EngineOptions, takes_options
from automem.engines.retry import (
    RetryPolicy,
    Transient,
    one_line,
    parse_retry_after,
    status_is_retryable,
    unexpected,
    with_retries,
)

log = logging.getLogger(__name__)

MODES = ("auto", "grammar", "vllm", "vllm_guided", "json_schema", "none")
#: modes where the GBNF grammar itself constrains decoding
GRAMMAR_MODES = ("grammar", "vllm", "vllm_guided")
#: what ``auto`` tries, best first
PROBE_ORDER = ("grammar", "vllm", "vllm_guided", "json_schema")

#: the JSON wrapper used where only JSON schemas are enforced (json_schema mode, Ollama's ``format``)
COMMAND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"command": {"type": "string"}},
    "required": ["command"],
    "additionalProperties": False,
}
#: ``{"command": "`` and ``"}`` cost tokens the agent's budget does not count
JSON_OVERHEAD_TOKENS = 12

# The probe asks for something a model would not answer on its own, so "ok" proves the constraint.
_PROBE_MESSAGES = [{"role": "user", "content": "Name a colour."}]
_PROBE_GRAMMAR = 'root ::= "ok"'
_PROBE_SCHEMA = {
    "type": "object",
    "properties": {"command": {"type": "string", "enum": ["ok"]}},
    "required": ["command"],
    "additionalProperties": False,
}
_DUMMY_KEY = "sk-no-key-required"  # local servers ignore it; the client refuses an empty key
_PARTIAL_COMMAND = re.compile(r'^\s*\{\s*"command"\s*:\s*"((?:[^"\\]|\\.)*)', re.DOTALL)


def unwrap_command(content: str) -> str:
    """``{"command": "ACT north"}`` -> ``ACT north``; a reply cut at max_tokens keeps what it has.

    Anything else comes back unchanged, so the agent's parser can say what is wrong with it.
    """
    try:
        data = json.loads(content)
    except ValueError:
        match = _PARTIAL_COMMAND.match(content)
        if match is None:
            return content
        partial = match.group(1)
        partial = partial[:-1] if partial.endswith("\\") and not partial.endswith("\\\\") else partial
        try:
            return str(json.loads(f'"{partial}"'))
        except ValueError:
            return partial
    if isinstance(data, dict) and isinstance(data.get("command"), str):
        return data["command"]
    return content


def split_target(target: str) -> tuple[str, str | None]:
    """``URL#MODEL`` -> (base URL, model or None); a URL without a path gets ``/v1``."""
    url, _, model = target.strip().rpartition("#") if "#" in target else (target.strip(), "", "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EngineError(f"openai engine needs an http(s) URL, as in openai:http://HOST:PORT/v1#MODEL; got {target!r}")
    if parts.path in ("", "/"):
        url = url.rstrip("/") + "/v1"  # vLLM, llama.cpp and LM Studio all serve under /v1
    return url.rstrip("/"), (model.strip() or None)


def _status_detail(exc: Any) -> str:
    """The server's own words from an error response, not the client's wrapper text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            inner = inner.get("message", inner)
        return one_line(inner)
    response = getattr(exc, "response", None)
    text = getattr(response, "text", None)
    return one_line(text or body or exc)


class OpenAIEngine:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key_env: str | None = None,
        timeout: float = 120.0,
        structured: str = "auto",
        retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        if structured not in MODES:
            raise EngineError(f"unknown structured mode {structured!r}; choose one of {', '.join(MODES)}")
        if timeout <= 0:
            raise EngineError(f"timeout must be positive, got {timeout}")
        try:
            import openai  # heavy: imported only when an engine is built
        except ImportError as exc:  # pragma: no cover - the dependency is declared
            raise EngineError(f"the openai package is not installed: {exc}") from None
        self._openai = openai
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        if api_key_env:
            key = api_key_from_env(api_key_env)
        else:
            key = _DUMMY_KEY  # never OPENAI_API_KEY implicitly: a local run must not send a real key
        self.timeout = float(timeout)
        self.policy = RetryPolicy(retries=int(retries), backoff_s=float(backoff_s), max_backoff_s=float(max_backoff_s))
        self.structured = structured
        self._where = f"openai server {self.base_url}"
        # the client's own retries are off: ours cover refused connections too and end in an EngineError
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=key,
            timeout=openai.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            max_retries=0,
        )
        self._lock = threading.Lock()
        self._mode: str | None = None if structured == "auto" else structured
        try:
            self.model = model or self._first_model()
        except EngineError:
            self._client.close()
            raise

    def __repr__(self) -> str:
        # the key stays out: only the name of the variable that holds it
        key = f", api_key_env={self.api_key_env!r}" if self.api_key_env else ""
        return f"OpenAIEngine({self.base_url!r}, model={self.model!r}, structured={self.structured!r}{key})"

    __str__ = __repr__

    # -- errors and retries -----------------------------------------------------------------------
    def _translate(self, exc: Exception) -> Transient | EngineError:
        """An openai exception -> Transient (try again) or EngineError (final)."""
        openai = self._openai
        if isinstance(exc, openai.APITimeoutError):
            return Transient(f"no answer within {self.timeout:g} s")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            return Transient(f"cannot connect ({one_line(cause or exc, 120)})")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = _status_detail(exc)
            if status_is_retryable(status):
                retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
                return Transient(f"HTTP {status}: {detail}", retry_after=retry_after)
            if status in (401, 403):
                hint = f"check the key in ${self.api_key_env}" if self.api_key_env else "set api_key_env"
                return EngineError(f"{self._where}: authentication refused (HTTP {status}: {detail}); {hint}")
            if status == 404:
                model = getattr(self, "model", None)  # unset while the model list is fetched
                return EngineError(f"{self._where}: not found (HTTP 404: {detail}); check the URL and model {model!r}")
            return EngineError(f"{self._where}: request rejected (HTTP {status}: {detail})")
        return EngineError(f"{self._where}: {one_line(exc)}")

    def _call(self, fn: Any, *, needs_choices: bool = False, **kwargs: Any) -> Any:
        def attempt() -> Any:
            try:
                out = fn(**kwargs)
            except self._openai.OpenAIError as exc:
                raise self._translate(exc) from None
            except Exception as exc:
                raise unexpected(exc) from None
            if needs_choices and not getattr(out, "choices", None):
                raise Transient("the reply has no choices")
            return out

        return with_retries(attempt, self.policy, where=self._where)

    def _first_model(self) -> str:
        page = self._call(self._client.models.list)
        models = [m.id for m in getattr(page, "data", []) or []]
        if not models:
            raise EngineError(f"{self._where}: lists no models; give one as openai:URL#MODEL")
        return str(models[0])

    # -- structured output ------------------------------------------------------------------------
    @staticmethod
    def _structure(mode: str, grammar: str | None) -> tuple[dict[str, Any], Any]:
        """(extra_body, response_format or None) for one request."""
        if mode == "json_schema":
            schema = {"name": "command", "strict": True, "schema": COMMAND_SCHEMA}
            return {}, {"type": "json_schema", "json_schema": schema}
        if grammar is None:
            return {}, None
        if mode == "grammar":
            return {"grammar": grammar}, None
        if mode == "vllm":
            return {"structured_outputs": {"grammar": grammar}}, None
        if mode == "vllm_guided":
            return {"guided_grammar": grammar}, None
        return {}, None

    def _probe_one(self, mode: str) -> bool | None:
        """True: the mode constrains output; False: it does not; None: the server could not be asked."""
        if mode == "json_schema":
            extra: dict[str, Any] = {}
            response_format: Any = {
                "type": "json_schema",
                "json_schema": {"name": "probe", "strict": True, "schema": _PROBE_SCHEMA},
            }
        else:
            extra, response_format = self._structure(mode, _PROBE_GRAMMAR)
        kwargs: dict[str, Any] = {"extra_body": extra or None}
        if response_format is not None:
            kwargs["response_format"] = response_format
        try:
            out = self._client.chat.completions.create(
                model=self.model, messages=_PROBE_MESSAGES, max_tokens=8, temperature=0.0, seed=0, **kwargs
            )
        except self._openai.APIConnectionError:
            return None
        except self._openai.APIStatusError as exc:
            # llama-cpp-python answers HTTP 500 to a json_schema response_format, others 400/422
            log.debug("%s: structured mode %s refused: %s", self._where, mode, _status_detail(exc))
            return None if exc.status_code in (408, 429, 502, 503, 504) else False
        content = (out.choices[0].message.content or "").strip() if out.choices else ""
        if mode == "json_schema":
            try:
                return json.loads(content) == {"command": "ok"}
            except ValueError:
                return False
        return content == "ok"

    def _probe(self) -> str | None:
        for mode in PROBE_ORDER:
            verdict = self._probe_one(mode)
            if verdict is None:
                return None  # unreachable or overloaded: decide later, not now
            if verdict:
                return mode
        return "none"

    @property
    def structured_mode(self) -> str:
        """The mode in use; with ``auto`` the first access probes the server (once, then cached)."""
        mode = self._mode
        if mode is not None:
            return mode
        with self._lock:
            if self._mode is None:
                found = self._probe()
                if found is None:
                    return "none"  # plain text this time; the next access probes again
                log.info("%s: structured output mode %s", self._where, found)
                self._mode = found
            return self._mode

    @property
    def supports_grammar(self) -> bool:
        return self.structured_mode in GRAMMAR_MODES

    # -- the call ---------------------------------------------------------------------------------
    def complete(
        self,
        messages: list[Message],
        *,
        grammar: str | None = None,
        max_tokens: int = 64,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> Completion:
        mode = self.structured_mode
        extra, response_format = self._structure(mode, grammar)
        kwargs: dict[str, Any] = {
            "model": self.model,
            # plain strings: some chat templates (SmolLM2's) fail on lists of content parts
            "messages": [{"role": m["role"], "content": str(m["content"])} for m in messages],
            "max_tokens": max_tokens + (JSON_OVERHEAD_TOKENS if mode == "json_schema" else 0),
            "temperature": temperature,
            "extra_body": extra or None,
        }
        if seed is not None:
            kwargs["seed"] = seed
        if response_format is not None:
            kwargs["response_format"] = response_format
        timing: dict[str, float] = {}

        def create(**kw: Any) -> Any:
            # latency of the try that answered, not of the backoff before it
            start = time.perf_counter()
            out = self._client.chat.completions.create(**kw)
            timing["latency"] = time.perf_counter() - start
            return out

        out = self._call(create, needs_choices=True, **kwargs)
        choice = out.choices[0]
        text = choice.message.content or ""
        if not text.strip() and choice.finish_reason != "length":
            # the same seed would answer the same: no retry; the agent counts it as a failed turn
            raise EngineError(f"{self._where}: the reply is empty (finish_reason {choice.finish_reason!r})")
        if mode == "json_schema":
            log.debug("%s: raw JSON reply %r", self._where, text)
            text = unwrap_command(text)
        usage = out.usage
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        return Completion(
            text=text,
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            cached_tokens=int(getattr(details, "cached_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            latency_s=timing.get("latency", 0.0),
            finish_reason=choice.finish_reason,
        )

    supports_tools = True  # servers without tool support answer in text: tool_calls stays empty

    def complete_tools(
        self,
        messages: list[Message],
        tools: list[dict[str, Any]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.2,
        seed: int | None = None,
    ) -> Completion:
        """One call offering ``tools`` (OpenAI tool schemas); the model may answer or call them."""
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": str(m["content"])} for m in messages],
            "tools": tools,
            "tool_choice": "auto",
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if seed is not None:
            kwargs["seed"] = seed
        start = time.perf_counter()
        out = self._call(self._client.chat.completions.create, needs_choices=True, **kwargs)
        latency = time.perf_counter() - start
        choice = out.choices[0]
        calls = [
            ToolCall(c.function.name, c.function.arguments or "{}")
            for c in (choice.message.tool_calls or [])
            if getattr(c, "function", None) is not None
        ]
        usage = out.usage
        return Completion(
            text=choice.message.content or "",
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            cached_tokens=0,
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            latency_s=latency,
            finish_reason=choice.finish_reason,
            tool_calls=calls,
        )

    def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()


class HttpOptions(EngineOptions):
    """What every HTTP engine takes: the key's variable, the model and how hard to retry."""

    model: str | None = Field(None, description="the served model (a spec's #MODEL wins)")
    api_key_env: str | None = Field(None, description="environment variable holding the API key")
    timeout: float = Field(120.0, gt=0, description="seconds per request")
    retries: int = Field(4, ge=0, description="retries of a failed request (connection, 429, 5xx)")
    backoff_s: float = Field(0.5, ge=0, description="first wait between retries, doubled each time")
    max_backoff_s: float = Field(10.0, ge=0, description="longest wait between retries")


class OpenAIOptions(HttpOptions):
    structured: str = Field("auto", description="how output is constrained: auto, grammar, json_schema, none")


@takes_options(OpenAIOptions, "openai")
def factory(target: str, **options: object) -> OpenAIEngine:
    """``openai:URL#MODEL`` -> OpenAIEngine; options are the constructor's keyword arguments."""
    if not target.strip():
        raise EngineError("the openai engine needs a server URL: openai:http://HOST:PORT/v1#MODEL")
    base_url, model = split_target(target)
    opts: dict[str, Any] = dict(options)
    model = model or opts.pop("model", None)  # the spec's #MODEL wins over a profile's model option
    opts.pop("model", None)
    return OpenAIEngine(base_url, model, **opts)
