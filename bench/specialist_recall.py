"""Does a memory specialist answer its own training prompts as trained? A check for a specialist
that plays DONE everywhere: if it reproduces its training answers here, it learned those prompts
rather than when to write; if the engines disagree, suspect the adapter's conversion.

    python bench/specialist_recall.py DATASET_FOLDER ADAPTER_FOLDER [--n 8] [--engines llamacpp transformers]

Greedy, no grammar: each example's prompt (its messages but the last) and the trained answer
beside what each engine answers, then how many answers match the trained one's first word
(``DONE`` or the verb) per engine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="a dataset folder written by automem mine")
    parser.add_argument("adapter", type=Path, help="an adapter folder written by automem finetune")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--split", default="train", choices=["train", "val"])
    parser.add_argument("--engines", nargs="+", default=["llamacpp", "transformers"])
    args = parser.parse_args()

    from automem.engines import make_engine

    lines = (args.dataset / f"{args.split}.jsonl").read_text(encoding="utf-8").splitlines()
    examples = [json.loads(line)["messages"] for line in lines if line.strip()][: args.n]
    answers: dict[str, list[str]] = {}
    for name in args.engines:
        engine = make_engine(f"{name}:{args.adapter}")
        try:
            answers[name] = [
                engine.complete(m[:-1], max_tokens=24, temperature=0.0, seed=0).text.strip() for m in examples
            ]
        finally:
            engine.close()
    for index, messages in enumerate(examples):
        print(f"[{index}] trained: {messages[-1]['content'][:60]!r}")
        for name in args.engines:
            print(f"    {name:12} {answers[name][index][:60]!r}")
    for name in args.engines:
        same = sum(
            (a.split() or [""])[0].lower() == (m[-1]["content"].split() or [""])[0].lower()
            for a, m in zip(answers[name], examples, strict=True)
        )
        print(f"{name}: {same} of {len(examples)} answers begin as trained")


if __name__ == "__main__":
    main()
