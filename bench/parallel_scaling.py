"""Parallel scaling: game steps per second with 1, 2 and 4 eval workers sharing one
``automem serve`` (llama.cpp's own server with the bundled model, started here on 127.0.0.1 with
one slot per worker: continuous batching, a prompt cache per slot).

Workers are threads sharing one OpenAI-compatible client, as ``automem eval`` runs them for HTTP
engines. Against llama-cpp-python's server (one request at a time, one KV cache) more workers
were slower: 0.49, 0.39, 0.38 steps/s for 1, 2, 4 workers (2026-11-24).

    python bench/parallel_scaling.py [--workers 1 2 4] [--episodes 4] [--steps 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from automem.engines.serve import served
from automem.memory.structure import load_builtin
from automem.runs.eval import EvalConfig, plan_eval, run_eval
from automem.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--structure", default="crafter-v0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "serve.log"
        with served(parallel=max(args.workers), n_ctx=8192, log_path=log) as url:
            store = Store(Path(tmp) / "scaling.db")
            base = None
            for workers in args.workers:
                config = EvalConfig(
                    game="crafter",
                    tasks=[None],
                    seeds=list(range(args.episodes)),
                    structure=load_builtin(args.structure),
                    engine_spec=f"openai:{url}",
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


if __name__ == "__main__":
    main()
