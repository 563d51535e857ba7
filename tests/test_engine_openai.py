"""The OpenAI-compatible engine against a real ``automem serve`` and a scripted HTTP server.

The real server (the bundled SmolLM2-135M) shows grammar-constrained commands, token counts and
the structured-mode probe end to end; the scripted one (a tiny ``http.server`` on 127.0.0.1) plays
the failures a real server will not produce on demand: 503s, 429s, rejected fields.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from automem.engines.base import EngineError
from automem.engines.openai_http import JSON_OVERHEAD_TOKENS, OpenAIEngine, factory, split_target, unwrap_command
from automem.engines.profiles import engine_test
from automem.engines.serve import free_port
from automem.memory.grammar import build_grammar
from automem.memory.ops import Verb
from automem.memory.syntax import Act, ParseError, parse_command

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05}  # retries in tests must not sleep for real

MESSAGES = [
    {"role": "system", "content": "You play a game. Answer with one command line."},
    {"role": "user", "content": "Actions: noop, far east. Memory file: notes.md. Your command?"},
]


# -- a real server: `automem serve` (llama.cpp's own server) ---------------------------------------
@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from automem.engines.serve import served

    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with served(parallel=2, n_ctx=2048, threads=2, log_path=log) as url:
        yield url


@pytest.fixture(scope="session")
def real_engine(llama_server: str) -> Iterator[OpenAIEngine]:
    engine = factory(llama_server, **FAST)  # no #MODEL: the first model the server lists
    yield engine
    engine.close()


def game_grammar() -> str:
    return build_grammar(
        verbs={Verb.VIEW, Verb.APPEND},
        paths=["notes.md"],
        actions=["noop", "far east"],
        allow_done=True,
        allow_act=True,
        allow_new_paths=False,
        max_text_chars=40,
    )


def test_real_server_grammar_gives_a_command_that_parses(real_engine: OpenAIEngine) -> None:
    assert real_engine.model.endswith(".gguf")  # the id `automem serve` lists: the model's file name
    # llama.cpp's server honours a top-level "grammar" field: auto finds it on the first try
    assert real_engine.supports_grammar
    assert real_engine.structured_mode == "grammar"
    grammar = game_grammar()
    for seed in (1, 2, 3):
        completion = real_engine.complete(MESSAGES, grammar=grammar, max_tokens=40, temperature=0.9, seed=seed)
        parsed = parse_command(completion.text.strip())
        assert not isinstance(parsed, ParseError), (completion.text, parsed)
        assert completion.input_tokens > 20 and completion.output_tokens > 0
        # llama.cpp's server keeps a prompt cache per slot and says how much of the prompt it reused
        assert 0 <= completion.cached_tokens < completion.input_tokens
        assert 0 < completion.latency_s < 30
        assert completion.finish_reason in ("stop", "length")


def test_real_server_shared_by_threads(real_engine: OpenAIEngine) -> None:
    grammar = 'root ::= "ACT " ("noop" | "far east")'
    results: list[str] = []
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            # 16: the grammar lets the model spell "far east" in pieces as small as one character
            results.append(real_engine.complete(MESSAGES, grammar=grammar, max_tokens=16, seed=seed).text)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and set(results) <= {"ACT far east", "ACT noop"} and len(results) == 4


def test_real_server_plain_mode_and_engine_test(llama_server: str, real_engine: OpenAIEngine) -> None:
    plain = factory(f"{llama_server}#{real_engine.model}", structured="none", **FAST)
    assert not plain.supports_grammar
    completion = plain.complete(MESSAGES, max_tokens=8, seed=1)
    assert isinstance(completion.text, str) and completion.output_tokens > 0

    report = engine_test(real_engine)
    assert report["grammar"] is True and report["structured"] == "grammar"
    assert report["text"] in ("ACT north", "ACT south", "ACT wait") and report["parses"]
    assert report["output_tokens"] > 0 and report["tokens_per_s"] > 0 and report["latency_s"] > 0


def test_dead_server_is_an_engine_error_after_bounded_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    engine = factory(f"{url}#m", retries=2, **FAST)
    start = time.perf_counter()
    with pytest.raises(EngineError, match=r"cannot connect.*gave up after 3 tries") as info:
        engine.complete(MESSAGES, max_tokens=4)
    assert url in str(info.value) and "\n" not in str(info.value)
    assert time.perf_counter() - start < 5
    # without a model name the listing fails the same way, at construction
    with pytest.raises(EngineError, match="cannot connect"):
        factory(url, retries=1, **FAST)


# -- a scripted server ------------------------------------------------------------------------------
Reply = tuple[int, dict[str, str], Any]


class ScriptedServer:
    """Answers each request with ``respond(path, body)``; keeps what it received."""

    def __init__(self, respond: Callable[[str, dict[str, Any]], Reply]) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: dict[str, Any]) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append({"path": self.path, "headers": headers, "body": body})
                status, headers, payload = respond(self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer({})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(json.loads(self.rfile.read(length) or b"{}"))

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def chats(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]


def chat_reply(content: str, *, cached: int | None = None) -> Reply:
    usage: dict[str, Any] = {"prompt_tokens": 31, "completion_tokens": 4, "total_tokens": 35}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "scripted",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": usage,
    }
    return 200, {}, body


def error_reply(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return status, headers or {}, {"error": {"message": message, "type": "error", "code": status}}


def test_retries_503_then_answers_with_the_bearer_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-0123456789-secret"
    monkeypatch.setenv("AUTOMEM_TEST_KEY", secret)
    replies = iter([error_reply(503, "loading model"), error_reply(503, "loading model")])

    def respond(path: str, body: dict[str, Any]) -> Reply:
        return next(replies, None) or chat_reply("ACT north", cached=24)

    with ScriptedServer(respond) as server:
        engine = factory(f"{server.url}#scripted", api_key_env="AUTOMEM_TEST_KEY", structured="none", **FAST)
        completion = engine.complete(MESSAGES, max_tokens=16, temperature=0.2, seed=7)
        engine.close()
    assert completion.text == "ACT north" and parse_command(completion.text) == Act("north")
    assert (completion.input_tokens, completion.cached_tokens, completion.output_tokens) == (31, 24, 4)
    chats = server.chats()
    assert len(chats) == 3
    assert all(r["headers"].get("authorization") == f"Bearer {secret}" for r in chats)
    body = chats[-1]["body"]
    assert body["model"] == "scripted" and body["max_tokens"] == 16 and body["seed"] == 7
    assert body["messages"] == MESSAGES  # plain string contents
    assert "grammar" not in body and "response_format" not in body
    for text in (repr(engine), str(engine)):
        assert secret not in text and "AUTOMEM_TEST_KEY" in text


def test_429_waits_retry_after_but_no_longer_than_the_cap() -> None:
    replies = iter([error_reply(429, "slow down", {"Retry-After": "100"})])
    with ScriptedServer(lambda p, b: next(replies, None) or chat_reply("DONE")) as server:
        engine = factory(f"{server.url}#m", structured="none", **FAST)
        start = time.perf_counter()
        assert engine.complete(MESSAGES).text == "DONE"
        assert time.perf_counter() - start < 2
    assert len(server.chats()) == 2


def test_exhausted_retries_and_client_errors() -> None:
    with ScriptedServer(lambda p, b: error_reply(500, "boom\nTraceback ...")) as server:
        engine = factory(f"{server.url}#m", structured="none", retries=2, **FAST)
        with pytest.raises(EngineError, match=r"HTTP 500: boom Traceback \.\.\. \(gave up after 3 tries\)"):
            engine.complete(MESSAGES)
    assert len(server.chats()) == 3
    with ScriptedServer(lambda p, b: error_reply(400, "max_tokens is too large")) as server:
        engine = factory(f"{server.url}#m", structured="none", **FAST)
        with pytest.raises(EngineError, match="request rejected .HTTP 400: max_tokens is too large"):
            engine.complete(MESSAGES)
    assert len(server.chats()) == 1  # a 4xx is not retried
    with ScriptedServer(lambda p, b: error_reply(401, "bad key")) as server:
        engine = factory(f"{server.url}#m", structured="none", **FAST)
        with pytest.raises(EngineError, match="authentication refused"):
            engine.complete(MESSAGES)


def vllm_like(path: str, body: dict[str, Any]) -> Reply:
    """vLLM ignores fields it does not know, and honours structured_outputs.grammar."""
    grammar = body.get("structured_outputs", {}).get("grammar")
    if grammar == 'root ::= "ok"':
        return chat_reply("ok")
    return chat_reply("ACT far east" if grammar else "Blue, I think.")


def test_auto_probe_finds_vllm_structured_outputs_once() -> None:
    with ScriptedServer(vllm_like) as server:
        engine = factory(f"{server.url}#qwen", **FAST)
        assert engine.supports_grammar and engine.structured_mode == "vllm"
        probes = len(server.chats())
        assert probes == 2  # "grammar" (ignored: the answer was not "ok"), then structured_outputs
        assert engine.supports_grammar  # cached: no new probe
        completion = engine.complete(MESSAGES, grammar=game_grammar(), max_tokens=20)
    assert completion.text == "ACT far east"
    sent = server.chats()[-1]["body"]
    assert sent["structured_outputs"] == {"grammar": game_grammar()} and "grammar" not in sent
    assert len(server.chats()) == probes + 1


def test_forced_vllm_guided_sends_guided_grammar() -> None:
    with ScriptedServer(lambda p, b: chat_reply("ACT noop")) as server:
        engine = factory(f"{server.url}#m", structured="vllm_guided", **FAST)
        assert engine.supports_grammar
        engine.complete(MESSAGES, grammar='root ::= "ACT noop"')
    assert [r["body"]["guided_grammar"] for r in server.chats()] == ['root ::= "ACT noop"']


def hosted_like(path: str, body: dict[str, Any]) -> Reply:
    """A hosted API: unknown fields are a 400, json_schema response formats are enforced."""
    for field in ("grammar", "structured_outputs", "guided_grammar"):
        if field in body:
            return error_reply(400, f"Unrecognized request argument supplied: {field}")
    if body.get("response_format", {}).get("type") == "json_schema":
        name = body["response_format"]["json_schema"]["name"]
        return chat_reply(
            '{"command": "ok"}' if name == "probe" else '{"command": "append notes.md: tree \\"north\\""}'
        )
    return chat_reply("Sure! Here is my move: ACT north")


def test_auto_probe_falls_back_to_json_schema_and_unwraps() -> None:
    with ScriptedServer(hosted_like) as server:
        engine = factory(f"{server.url}#gpt", **FAST)
        assert engine.structured_mode == "json_schema" and not engine.supports_grammar
        completion = engine.complete(MESSAGES, max_tokens=30)
    assert completion.text == 'append notes.md: tree "north"'
    sent = server.chats()[-1]["body"]
    assert sent["max_tokens"] == 30 + JSON_OVERHEAD_TOKENS
    assert sent["response_format"]["json_schema"]["schema"]["required"] == ["command"]


def test_auto_probe_falls_back_to_plain_text() -> None:
    with ScriptedServer(lambda p, b: chat_reply("Blue.")) as server:
        engine = factory(f"{server.url}#m", **FAST)
        assert engine.structured_mode == "none" and not engine.supports_grammar
        assert len(server.chats()) == 4  # grammar, vllm, vllm_guided, json_schema


def test_probe_on_a_dead_server_is_not_cached() -> None:
    engine = factory(f"http://127.0.0.1:{free_port()}/v1#m", retries=0, **FAST)
    assert not engine.supports_grammar  # undecided: plain text for now
    assert engine._mode is None  # and asked again next time


def test_unwrap_command() -> None:
    assert unwrap_command('{"command": "ACT north"}') == "ACT north"
    assert unwrap_command('{"command": "append a.md: say \\"hi\\"\\u00e9"}') == 'append a.md: say "hi"é'
    assert unwrap_command('{"command": "append a.md: cut her') == "append a.md: cut her"  # max_tokens hit
    assert unwrap_command('{"command": "append a.md: x\\') == "append a.md: x"
    assert unwrap_command("ACT north") == "ACT north"
    assert unwrap_command('{"other": 1}') == '{"other": 1}'


def test_specs_and_options() -> None:
    assert split_target("http://h:8000/v1#Qwen2.5-32B-Instruct") == ("http://h:8000/v1", "Qwen2.5-32B-Instruct")
    assert split_target("http://h:8000") == ("http://h:8000/v1", None)
    assert split_target("https://api.example.com/openai/v1/") == ("https://api.example.com/openai/v1", None)
    for bad in ("", "h:8000/v1", "ftp://h/v1"):
        with pytest.raises(EngineError, match="URL"):
            factory(bad)
    with pytest.raises(EngineError, match="unknown option 'temperature'"):
        factory("http://127.0.0.1:9/v1#m", temperature=0.1)
    with pytest.raises(EngineError, match="option 'timeout' of the openai engine: Input should be a valid number"):
        factory("http://127.0.0.1:9/v1#m", timeout="soon")
    with pytest.raises(EngineError, match="unknown structured mode"):
        factory("http://127.0.0.1:9/v1#m", structured="regex")
    with pytest.raises(EngineError, match="AUTOMEM_NO_SUCH_KEY"):
        factory("http://127.0.0.1:9/v1#m", api_key_env="AUTOMEM_NO_SUCH_KEY")
    engine = factory("http://127.0.0.1:9/v1", model="m", timeout="30", retries="1")
    assert (engine.model, engine.timeout, engine.policy.retries) == ("m", 30.0, 1)


def test_modules_stay_light() -> None:
    code = (
        "import sys, automem.engines.openai_http, automem.engines.ollama, automem.engines.profiles; "
        "print([m for m in ('openai', 'ollama', 'httpx', 'llama_cpp', 'xllamacpp') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd())
    assert out.stdout.strip() == "[]"


def test_tool_calls_are_read_from_the_reply() -> None:
    """A server whose model calls a tool (vLLM, or llama.cpp with a template that knows tools): the
    engine offers the tools and reads the calls back. SmolLM2's template knows no tools, so the real
    server above ignores them; the in-process engine offers them itself (tests/test_optimize.py)."""
    from automem.engines.base import supports_tools
    from automem.optimize.digest import TOOLS

    def respond(path: str, body: dict[str, Any]) -> Reply:
        status, headers, reply = chat_reply("")
        call = {"id": "c1", "type": "function", "function": {"name": "step_range", "arguments": '{"episode": 3}'}}
        reply["choices"][0]["message"]["tool_calls"] = [call]
        reply["choices"][0]["finish_reason"] = "tool_calls"
        return status, headers, reply

    with ScriptedServer(respond) as server:
        engine = factory(f"{server.url}#m", structured="none", **FAST)
        assert supports_tools(engine)
        reply = engine.complete_tools(MESSAGES, TOOLS, max_tokens=80, temperature=0.2, seed=1)
        engine.close()
    assert [(c.name, json.loads(c.arguments)) for c in reply.tool_calls] == [("step_range", {"episode": 3})]
    body = server.chats()[0]["body"]
    assert body["tools"] == TOOLS and body["tool_choice"] == "auto"


def test_serve_answers_the_openai_client(llama_server: str) -> None:
    """`automem serve` through the official openai client: a chat completion under a grammar, the
    model listed by its file name, the reused prefix reported on the second call."""
    import openai

    client = openai.OpenAI(base_url=llama_server, api_key="none")
    (model,) = [m.id for m in client.models.list().data]
    assert model == "SmolLM2-135M-Instruct.Q4_1.gguf"
    kwargs: dict[str, Any] = {"model": model, "messages": MESSAGES, "max_tokens": 8, "seed": 3}
    first = client.chat.completions.create(**kwargs, extra_body={"grammar": 'root ::= "ACT " ("noop" | "far east")'})
    assert first.choices[0].message.content in ("ACT noop", "ACT far east")
    again = client.chat.completions.create(**kwargs, extra_body={"grammar": 'root ::= "DONE"'})
    assert again.choices[0].message.content == "DONE"
    assert again.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - 1
    client.close()
