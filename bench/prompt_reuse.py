"""Prompt reuse: share of prompt tokens served from the llama.cpp KV cache over a 50-step episode,
per built-in structure, as recorded in ``llm_calls`` (cached_tokens / input_tokens).

    python bench/prompt_reuse.py [--steps 50] [--structures crafter-v0 nethack-v0 minihack-v0 none]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from automem.engines import make_engine
from automem.memory.structure import load_builtin
from automem.runs import RunConfig, execute_run
from automem.store import Store

GAME_OF = {
    "crafter-v0": ("crafter", None),
    "nethack-v0": ("nethack", None),
    "minihack-v0": ("minihack", "MazeWalk-9x9"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--structures", nargs="+", default=["crafter-v0", "minihack-v0", "nethack-v0", "none"])
    args = parser.parse_args()
    engine = make_engine("llamacpp")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "reuse.db")
        for name in args.structures:
            game, task = GAME_OF.get(name, ("crafter", None))
            t0 = time.perf_counter()
            run_id, (summary,) = execute_run(
                RunConfig(
                    game=game,
                    task=task,
                    seeds=[args.seed],
                    structure=load_builtin(name),
                    engine_spec="llamacpp",
                    max_steps=args.steps,
                ),
                store,
                engine,
            )
            wall = time.perf_counter() - t0
            cached, total, calls, invalid = store.db.execute(
                "SELECT SUM(c.cached_tokens), SUM(c.input_tokens), COUNT(*), SUM(1 - c.valid) FROM llm_calls c "
                "JOIN episodes e ON e.id = c.episode_id WHERE e.run_id = ?",
                [run_id],
            ).fetchone()
            print(
                f"{name:12} {game:8} {summary.steps:3} steps: {100 * cached / total:5.1f}% of {total:,} prompt tokens "
                f"from cache, {calls / summary.steps:.2f} calls/step, {invalid} invalid, "
                f"{total / calls:,.0f} prompt tokens/call, {wall / summary.steps:.2f} s/step",
                flush=True,
            )
        store.close()
    engine.close()


if __name__ == "__main__":
    main()
