"""Store write throughput: steps per second written with their llm_calls and memory_ops rows.

Real step records are produced first (real game, real agent prompts, real memory operations, an
instant scripted engine), then written again and again into a fresh SQLite file, one transaction
per step exactly as a live episode writes them.

    python bench/store_write.py [--game nethack] [--steps 5000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from harness_overhead import TASKS, ScriptedEngine, scripted_setup  # noqa: E402

from automem.memory.structure import load_builtin  # noqa: E402
from automem.runs.episode import EpisodeRunner  # noqa: E402
from automem.store import StepRecord, Store  # noqa: E402


def sample_records(game_name: str, n: int, tmp: Path) -> list[StepRecord]:
    game, store, structure, run_id = scripted_setup(game_name, tmp / "sample.db")
    runner = EpisodeRunner.start(
        store=store,
        run_id=run_id,
        game=game,
        structure=structure,
        engine=ScriptedEngine(game.action_names()),
        seed=0,
        memory_dir=tmp / "mem",
        max_steps=n,
    )
    records = [event.record for event in runner.steps()]
    store.close()
    game.close()
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="nethack", choices=list(TASKS))
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        records = sample_records(args.game, 200, tmp)
        calls = sum(len(r.calls) for r in records) / len(records)
        ops = sum(len(r.ops) for r in records) / len(records)
        prompt_kb = (
            sum(len(str(c.prompt)) for r in records for c in r.calls)
            / max(1, sum(len(r.calls) for r in records))
            / 1024
        )
        rates = []
        for rep in range(args.repeats):
            store = Store(tmp / f"bench{rep}.db")
            sid = store.save_structure(load_builtin(f"{args.game}-v0"))
            run_id = store.create_run(
                name="bench",
                game=args.game,
                task="t",
                structure_id=sid,
                engine="scripted",
                memory_engine=None,
                config={},
            )
            written = 0
            start = time.perf_counter()
            while written < args.steps:
                ep = store.start_episode(
                    run_id=run_id,
                    game=args.game,
                    task="t",
                    seed=written,
                    structure_id=sid,
                    engine="scripted",
                    model="scripted",
                    memory_dir="-",
                    memory_seed={},
                )
                for rec in records[: args.steps - written]:
                    store.record_step(ep, rec)
                    written += 1
            elapsed = time.perf_counter() - start
            rates.append(written / elapsed)
            # most pages still sit in the WAL (checkpoints are rare by design)
            size = sum(p.stat().st_size for p in tmp.glob(f"bench{rep}.db*")) / 2**20
            store.close()
        print(f"{args.game}: {calls:.2f} llm_calls and {ops:.2f} memory_ops per step, prompts {prompt_kb:.1f} KiB/call")
        print(
            f"store write: median {statistics.median(rates):,.0f} steps/s over {args.repeats} x {args.steps} steps "
            f"(db {size:.1f} MiB)"
        )


if __name__ == "__main__":
    main()
