"""Parallel scaling: game steps per second with 1, 2 and 4 eval workers sharing one llama.cpp
server (``python -m llama_cpp.server`` with the bundled model, started here on 127.0.0.1).

Workers are threads sharing one OpenAI-compatible client, as ``automem eval`` runs them for HTTP
engines. llama_cpp.server evaluates one request at a time, so this shows how much the harness,
the games and the request overlap add on top of a serial server; a vLLM server would batch.

    python bench/parallel_scaling.py [--workers 1 2 4] [--episodes 4] [--steps 8]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from automem.engines.bundled import bundled_model_path
from automem.memory.structure import load_builtin
from automem.runs.eval import EvalConfig, plan_eval, run_eval
from automem.store import Store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(bundled_model_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "8192",
    ]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"llama_cpp.server did not start: {log.read_text()[-1000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--structure", default="crafter-v0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start_server(port, Path(tmp) / "server.log")
        try:
            store = Store(Path(tmp) / "scaling.db")
            base = None
            for workers in args.workers:
                config = EvalConfig(
                    game="crafter",
                    tasks=[None],
                    seeds=list(range(args.episodes)),
                    structure=load_builtin(args.structure),
                    engine_spec=f"openai:http://127.0.0.1:{port}/v1",
                    workers=workers,
                    max_steps=args.steps,
                    run_name=f"scaling-{workers}",
                    parallel="thread",
                )
                plan = plan_eval(store, config)
                t0 = time.perf_counter()
                summaries = run_eval(store, config, plan)
                wall = time.perf_counter() - t0
                steps = sum(s.steps for s in summaries)
                rate = steps / wall
                base = base or rate
                print(
                    f"{workers} worker(s): {steps} steps in {wall:.1f} s = {rate:.2f} steps/s (x{rate / base:.2f})",
                    flush=True,
                )
            store.close()
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
