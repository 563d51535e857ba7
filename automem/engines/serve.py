"""``automem serve`` as a child process: started, waited for, stopped (tests and benchmarks use it).

The server itself is llama.cpp's (through ``LlamaCppEngine`` with a host and port); this module
only runs ``python -m automem serve`` and waits until its ``/health`` answers.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from automem.engines.base import EngineError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def served(
    spec: str = "llamacpp",
    *,
    parallel: int = 1,
    n_ctx: int = 4096,
    threads: int | None = None,
    log_path: Path | None = None,
    timeout_s: float = 120.0,
) -> Iterator[str]:
    """Run ``automem serve SPEC`` on a free local port; yields its ``/v1`` URL, stops it after."""
    port = free_port()
    cmd = [sys.executable, "-m", "automem", "serve", spec, "--port", str(port), "--parallel", str(parallel)]
    cmd += ["--n-ctx", str(n_ctx)] + (["--threads", str(threads)] if threads else [])
    log = log_path.open("wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:] if log_path else ""
                raise EngineError(f"automem serve exited with {proc.returncode}: {tail}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise EngineError(f"automem serve did not answer within {timeout_s:g} s")
            time.sleep(0.2)
        yield f"{base}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_path:
            log.close()  # type: ignore[union-attr]
