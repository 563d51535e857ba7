"""Fine-tuning speed per backend on a mined dataset: optimizer steps, seconds per step, training
examples per second and peak GPU memory, each backend in its own process (Unsloth patches
transformers and trl when imported, which would change a peft run in the same process).

    python bench/finetune_speed.py --db DB --dataset NAME [--backends peft unsloth] [--epochs 1]
        [--max-steps -1] [--base bundled] [--precision auto|bf16|fp32] [--gradient-checkpointing auto|on|off]

Each setting is its own run: ``--precision fp32 --gradient-checkpointing on`` is what the trainer
did before 2026-12-01 on a CPU.

The runs are recorded in DB as ``bench-BACKEND-TIME`` training runs (so ``automem recipes`` lists them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def one(args: argparse.Namespace) -> None:
    import torch

    from automem.finetune.train import TrainConfig, finetune
    from automem.store import Store

    store = Store(Path(args.db))
    config = TrainConfig(
        dataset=args.dataset, base=args.base, out=f"bench-{args.one}-{int(time.time())}", backend=args.one,
        epochs=args.epochs, max_steps=args.max_steps, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
        precision=args.precision,
        gradient_checkpointing={"auto": None, "on": True, "off": False}[args.gradient_checkpointing],
    )  # fmt: skip
    start = time.perf_counter()
    result = finetune(store, config)
    wall = time.perf_counter() - start
    train = store.db.execute("SELECT train FROM datasets WHERE name = ?", [args.dataset]).fetchone()[0]
    steps, seconds = result["steps"], result["train_seconds"]
    row = store.db.execute("SELECT log FROM training_runs WHERE id = ?", [result["training_run_id"]]).fetchone()
    # the trainer's runtime includes its evaluations of the validation set: counted apart
    evaluating = sum(e.get("eval_runtime", 0.0) for e in json.loads(row[0] or "[]"))
    figures = {
        "backend": result["backend"],
        "precision": args.precision,
        "gradient_checkpointing": args.gradient_checkpointing,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "steps": steps,
        "train_seconds": round(seconds, 2),
        "seconds_per_step": round((seconds - evaluating) / steps, 3) if steps else None,
        "eval_seconds": round(evaluating, 1),
        "examples_per_second": round(train * args.epochs / seconds, 2) if seconds and args.max_steps < 0 else None,
        "wall_seconds_with_loading": round(wall, 1),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        "train_loss": round(result["train_loss"], 4),
        "eval_loss": round(result["eval_loss"], 4) if result.get("eval_loss") is not None else None,
        "adapter": result["adapter"],
    }
    print("FIGURES " + json.dumps(figures), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--backends", nargs="+", default=["peft", "unsloth"])
    parser.add_argument("--base", default="bundled")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--lora-alpha", type=int, default=16)
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    parser.add_argument("--gradient-checkpointing", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args)
        return
    rows = []
    for backend in args.backends:
        argv = [sys.executable, __file__, *sys.argv[1:], "--one", backend]
        done = subprocess.run(argv, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("FIGURES ")]
        if done.returncode != 0 or not lines:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            print(f"{backend}: failed (exit {done.returncode}): " + " | ".join(tail))
            continue
        rows.append(json.loads(lines[-1].removeprefix("FIGURES ")))
    for row in rows:
        print(
            f"{row['backend']:8} on {row['device']} ({row['precision']}, checkpointing "
            f"{row['gradient_checkpointing']}): {row['steps']} steps in {row['train_seconds']} s "
            f"({row['seconds_per_step']} s/step, {row['examples_per_second']} examples/s, "
            f"validation {row['eval_seconds']} s), "
            f"{row['wall_seconds_with_loading']} s with loading, peak GPU {row['peak_gpu_gib']} GiB, "
            f"loss {row['train_loss']} / eval {row['eval_loss']}"
        )
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
