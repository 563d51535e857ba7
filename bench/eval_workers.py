"""Process workers: game steps per second of ``automem eval`` with 1, 2 and 4 workers, each a
process with its own in-process llama.cpp engine (the bundled model) and ``cores // workers``
threads (at least one), on the same episodes.

The case of issue 16: MiniHack Room-5x5, seeds 1-4, 10 steps. Printed per worker count: wall,
steps, steps per second and its ratio to one worker, and the model's time per step inside the
workers (it rises when the workers' threads fight over the cores).

    python bench/eval_workers.py [--workers 1 2 4] [--seeds 1 2 3 4] [--steps 10]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from automem.memory.structure import load_builtin
from automem.runs.eval import EvalConfig, plan_eval, run_eval
from automem.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--game", default="minihack")
    parser.add_argument("--task", default="MiniHack-Room-5x5-v0")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; {args.game} {args.task}, seeds {args.seeds}, {args.steps} steps", flush=True)
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "workers.db")
        for workers in args.workers:
            config = EvalConfig(
                game=args.game,
                tasks=[args.task],
                seeds=args.seeds,
                structure=load_builtin(f"{args.game}-v0"),
                engine_spec="llamacpp",
                workers=workers,
                max_steps=args.steps,
                run_name=f"workers-{workers}",
            )
            plan = plan_eval(store, config)
            t0 = time.perf_counter()
            summaries = run_eval(store, config, plan)
            wall = time.perf_counter() - t0
            steps = sum(s.steps for s in summaries)
            rows = [r for s in summaries for r in store.steps(s.episode_id)]
            model = sum(r["model_s"] for r in rows) / max(len(rows), 1)
            rate = steps / wall
            base = base or rate
            print(
                f"{workers} worker(s): {steps} steps in {wall:.1f} s = {rate:.3f} steps/s (x{rate / base:.2f}), "
                f"model {model:.2f} s per step",
                flush=True,
            )
        store.close()


if __name__ == "__main__":
    main()
