"""Every way an HTTP engine's server can misbehave ends as an EngineError, never a traceback.

A real server on 127.0.0.1 misbehaves on purpose at the socket level: HTTP 500s, a body cut
before its Content-Length, a body that is not JSON, JSON without ``choices``, empty content, an
answer slower than the timeout, a connection closed in the middle of the body. Then ``automem
run`` plays against the worst of them: the episode is recorded ``failed`` with the reason.
"""

from __future__ import annotations

import json
import os
import socketserver
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from automem.engines.base import EngineError
from automem.engines.ollama import factory as ollama_factory
from automem.engines.openai_http import factory

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05}
MESSAGES = [{"role": "user", "content": "Your command?"}]
MODELS = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()


def chat_body(content: str) -> bytes:
    return json.dumps(
        {
            "id": "x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        }
    ).encode()  # fmt: skip


class Misbehaving:
    """Answers model listings properly and chat requests by ``behave(conn, n)`` (n counts chats)."""

    def __init__(self, behave: Callable[[socketserver.StreamRequestHandler, int], None]) -> None:
        self.chats = 0
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request_line = self.rfile.readline().decode()
                length = 0
                while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                    key, _, value = line.decode().partition(":")
                    if key.lower() == "content-length":
                        length = int(value)
                self.rfile.read(length)
                if "/models" in request_line or "/api/tags" in request_line:
                    body = MODELS if "/models" in request_line else b'{"models": [{"model": "m", "name": "m"}]}'
                    send(self, 200, body)
                    return
                outer.chats += 1
                behave(self, outer.chats)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Misbehaving:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def send(conn: socketserver.StreamRequestHandler, status: int, body: bytes, *, length: int | None = None) -> None:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {length or len(body)}\r\n"
    conn.wfile.write((head + "Connection: close\r\n\r\n").encode() + body)
    conn.wfile.flush()


def cut_body(conn: socketserver.StreamRequestHandler, n: int) -> None:
    body = chat_body("ACT noop")
    send(conn, 200, body[: len(body) // 2])  # Content-Length says half: valid HTTP, a cut JSON body


def closed_mid_body(conn: socketserver.StreamRequestHandler, n: int) -> None:
    body = chat_body("ACT noop")
    send(conn, 200, body[:20], length=len(body))  # promises more than it sends, then hangs up


BEHAVIOURS: dict[str, tuple[Callable[[socketserver.StreamRequestHandler, int], None], str]] = {
    "HTTP 500": (lambda c, n: send(c, 500, b'{"error": {"message": "boom"}}'), r"HTTP 500: boom .gave up after 3"),
    "a cut JSON body": (cut_body, r"not valid JSON .* \(gave up after 3 tries\)"),
    "a body that is not JSON": (lambda c, n: send(c, 200, b"<html>proxy error</html>"), "not valid JSON"),
    "JSON without choices": (lambda c, n: send(c, 200, b'{"id": "x", "object": "chat.completion"}'), "no choices"),
    "empty content": (lambda c, n: send(c, 200, chat_body("")), "the reply is empty"),
    "a connection closed mid-body": (closed_mid_body, r"gave up after 3 tries"),
    "an answer slower than the timeout": (lambda c, n: time.sleep(1.5), r"no answer within 0.5 s"),
}


@pytest.mark.parametrize("behaviour", list(BEHAVIOURS))
def test_openai_engine_turns_every_failure_into_one_engine_error(behaviour: str) -> None:
    behave, message = BEHAVIOURS[behaviour]
    with Misbehaving(behave) as server:
        engine = factory(f"{server.url}/v1#m", structured="none", retries=2, timeout=0.5, **FAST)
        with pytest.raises(EngineError, match=message) as info:
            engine.complete(MESSAGES)
        engine.close()
    assert "\n" not in str(info.value) and server.url in str(info.value)
    retried = behaviour not in ("empty content",)
    assert server.chats == (3 if retried else 1), server.chats


def test_a_flaky_server_is_retried_until_it_answers() -> None:
    def flaky(conn: socketserver.StreamRequestHandler, n: int) -> None:
        cut_body(conn, n) if n == 1 else closed_mid_body(conn, n) if n == 2 else send(conn, 200, chat_body("DONE"))

    with Misbehaving(flaky) as server:
        engine = factory(f"{server.url}/v1#m", structured="none", retries=3, **FAST)
        assert engine.complete(MESSAGES).text == "DONE"
        engine.close()
    assert server.chats == 3


@pytest.mark.parametrize("behaviour", ["HTTP 500", "a cut JSON body", "a body that is not JSON", "empty content"])
def test_ollama_engine_turns_failures_into_engine_errors(behaviour: str) -> None:
    """The Ollama engine at its HTTP boundary (no Ollama server can be installed here)."""
    behave, _ = BEHAVIOURS[behaviour]

    def ollama_behave(conn: socketserver.StreamRequestHandler, n: int) -> None:
        if behaviour == "empty content":
            body = {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"}
            send(conn, 200, json.dumps(body).encode())
        else:
            behave(conn, n)

    with Misbehaving(ollama_behave) as server:
        engine = ollama_factory("m", host=server.url, retries=1, **FAST)
        with pytest.raises(EngineError) as info:
            engine.complete(MESSAGES)
        engine.close()
    assert "\n" not in str(info.value)


def test_run_against_a_cut_body_server_records_the_episode_failed(tmp_path: Path) -> None:
    """The reported bug: HTTP 200 with a cut JSON body printed a JSONDecodeError traceback and
    left the episode `running`. Now every turn is an engine error, the episode ends `failed` with
    the reason, and the command exits non-zero with one line."""
    db = tmp_path / "a.db"
    with Misbehaving(cut_body) as server:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[engines.cut]\nspec = "openai:{server.url}/v1#m"\n'
            '[engines.cut.options]\nretries = 1\nbackoff_s = 0.01\nstructured = "none"\n'
        )
        env = {**os.environ, "AUTOMEM_DB": str(db), "AUTOMEM_CONFIG": str(config)}
        cmd = [sys.executable, "-m", "automem", "run", "crafter", "--engine", "cut", "--steps", "3"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode != 0
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT status, error FROM episodes").fetchall()
    assert len(rows) == 1 and rows[0][0] == "failed", rows
    assert "not valid JSON" in rows[0][1]
