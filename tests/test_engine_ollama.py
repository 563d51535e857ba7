"""The Ollama engine at its HTTP boundary: a local server replays recorded /api/chat and /api/tags exchanges.

No Ollama server can run here. The recordings in tests/data/ollama/ are hand-written from Ollama's
API reference (see their ``_source``); each holds the request the client is expected to send and
the response to play back. The test server checks the requests the real ``ollama`` client sent.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from automem.engines.base import EngineError
from automem.engines.ollama import OllamaEngine, factory
from automem.engines.openai_http import COMMAND_SCHEMA
from automem.engines.profiles import engine_test
from automem.memory.syntax import Act, parse_command

DATA = Path(__file__).parent / "data" / "ollama"
FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05}


def recording(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


class Replay:
    """Plays recordings back in order; every request received is kept for the assertions."""

    def __init__(self, *names: str) -> None:
        self.script = [recording(n) for n in names]
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.received.append({"method": self.command, "path": self.path, "headers": headers, "body": body})
                if outer.script:
                    response = outer.script.pop(0)["response"]
                    status, payload = response["status"], response["body"]
                else:
                    status, payload = 500, {"error": "replay: no recording left"}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Replay:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def assert_sent_as_recorded(received: dict[str, Any], name: str) -> None:
    expected = recording(name)["request"]
    assert (received["method"], received["path"]) == (expected["method"], expected["path"])
    for key, value in expected.get("body", {}).items():
        assert received["body"].get(key) == value, key


def test_structured_chat_is_sent_as_documented_and_unwrapped() -> None:
    messages = recording("chat_structured")["request"]["body"]["messages"]
    with Replay("chat_structured") as server:
        engine = factory("qwen2.5:7b", host=server.host, num_ctx=8192, keep_alive="10m")
        assert not engine.supports_grammar  # Ollama takes JSON schemas, not GBNF
        completion = engine.complete(messages, grammar='root ::= "ACT north"', max_tokens=16, temperature=0.2, seed=7)
        engine.close()
    (sent,) = server.received
    assert_sent_as_recorded(sent, "chat_structured")
    assert sent["body"]["format"] == COMMAND_SCHEMA
    assert "grammar" not in json.dumps(sent["body"])
    assert completion.text == "ACT north" and parse_command(completion.text) == Act("north")
    assert (completion.input_tokens, completion.cached_tokens, completion.output_tokens) == (58, 0, 9)
    assert completion.finish_reason == "stop" and completion.latency_s > 0


def test_default_model_comes_from_api_tags_and_plain_mode_sends_no_format() -> None:
    messages = recording("chat_plain")["request"]["body"]["messages"]
    with Replay("tags", "chat_plain") as server:
        engine = factory("", host=server.host, structured="none")
        assert engine.model == "qwen2.5:7b"  # the first model listed
        engine.model = "llama3.2:latest"
        completion = engine.complete(messages, max_tokens=16)
    tags, chat = server.received
    assert_sent_as_recorded(tags, "tags")
    assert_sent_as_recorded(chat, "chat_plain")
    assert "format" not in chat["body"] and "seed" not in chat["body"]["options"]
    assert completion.text == "ACT south" and completion.output_tokens == 4


def test_reply_cut_at_num_predict_keeps_the_partial_command() -> None:
    messages = recording("chat_truncated")["request"]["body"]["messages"]
    with Replay("chat_truncated") as server:
        completion = factory("qwen2.5:7b", host=server.host).complete(messages, max_tokens=8)
    assert_sent_as_recorded(server.received[0], "chat_truncated")
    assert completion.text == "append notes.md: the river is east of the"
    assert completion.finish_reason == "length"


def test_busy_server_is_retried_and_missing_model_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOMEM_OLLAMA_TOKEN", "tok-secret-42")
    with Replay("error_busy", "error_busy", "chat_structured") as server:
        engine = factory("qwen2.5:7b", host=server.host, api_key_env="AUTOMEM_OLLAMA_TOKEN", **FAST)
        assert engine.complete([{"role": "user", "content": "go"}]).text == "ACT north"
    assert len(server.received) == 3
    assert all(r["headers"]["authorization"] == "Bearer tok-secret-42" for r in server.received)
    assert "tok-secret-42" not in repr(engine) and "tok-secret-42" not in str(engine)

    with Replay("error_busy", "error_busy", "error_busy") as server:
        engine = factory("qwen2.5:7b", host=server.host, retries=2, **FAST)
        with pytest.raises(EngineError, match=r"HTTP 503: server busy.*gave up after 3 tries"):
            engine.complete([{"role": "user", "content": "go"}])

    with Replay("error_not_found") as server:
        engine = factory("nope:1b", host=server.host, **FAST)
        with pytest.raises(EngineError, match=r'model "nope:1b" not found, try pulling it first'):
            engine.complete([{"role": "user", "content": "go"}])
    assert_sent_as_recorded(server.received[0], "error_not_found")
    assert len(server.received) == 1


def test_dead_host_is_an_engine_error_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{port}")  # the host option's fallback
    engine = OllamaEngine("qwen2.5:7b", retries=2, **FAST)
    assert engine.host == f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    with pytest.raises(EngineError, match=rf"ollama server http://127.0.0.1:{port}: cannot connect.*3 tries"):
        engine.complete([{"role": "user", "content": "go"}])
    assert time.perf_counter() - start < 5


def test_engine_test_report_and_options() -> None:
    with Replay("chat_structured") as server:
        report = engine_test(factory("qwen2.5:7b", host=server.host))
    assert report["engine"] == "ollama" and report["grammar"] is False and report["text"] == "ACT north"
    assert report["parses"] and report["output_tokens"] == 9 and report["tokens_per_s"] > 0
    with pytest.raises(EngineError, match="unknown option 'temperature'"):
        factory("m", temperature=0.3)
    with pytest.raises(EngineError, match="unknown structured mode"):
        factory("m", structured="grammar")
    with pytest.raises(EngineError, match="option 'num_ctx' of the ollama engine: Input should be a valid integer"):
        factory("m", num_ctx="big")
