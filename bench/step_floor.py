"""Step speed against the model's floor, for the transcript layout and the previous one, in one run.

First the model's own speed on this machine, through the same engine: per-token prefill time for
batches of 16, 64 and 256 new tokens and per-token decode time, each at contexts of about 500,
1,500, 2,500 and 3,500 tokens (a 135M model's attention is a large share of its work: the
context length matters as much as the token count). Then one episode per game and layout with
the bundled model; for each call the floor is its new prompt tokens at the measured prefill time
for that batch size and context, plus its output tokens at the decode time for that context.

Printed per game and layout: new prompt tokens and output tokens per step, the cached share,
calls per step, transcript rebuilds, the floor, the measured model time and wall per step, and
model time / floor; then the transcript layout's gain over the rebuild layout as ratios.

    python bench/step_floor.py [--steps 50] [--games crafter minihack nethack] [--seeds 9 ...]
                               [--layouts transcript[:GROWTH][:full][:keep] ... rebuild]
                               [--cache-type-k f16]
"""

from __future__ import annotations

import argparse
import bisect
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from automem.engines.bundled import bundled_model_path
from automem.engines.llamacpp import CACHE_TYPES, LlamaCppEngine
from automem.memory.structure import Structure, load_builtin
from automem.runs import RunConfig, execute_run
from automem.store import Store

GAMES = {"crafter": ("crafter-v0", None), "minihack": ("minihack-v0", "MazeWalk-9x9"), "nethack": ("nethack-v0", None)}
CONTEXTS = (500, 1500, 2500, 3500)
BATCHES = (16, 64, 256)
FILLER = "the tree is north of the water, the cow is east of the table and the stone lies south. "


@dataclass
class Rates:
    """Milliseconds per token: prefill[(context, batch)] and decode[context]."""

    prefill: dict[tuple[int, int], float]
    decode: dict[int, float]

    def _at_context(self, table: dict[int, float], context: int) -> float:
        xs = sorted(table)
        i = min(max(bisect.bisect_left(xs, context), 1), len(xs) - 1)
        x0, x1 = xs[i - 1], xs[i]
        # linear in the context, extrapolated at the ends (attention grows with it)
        return table[x0] + (table[x1] - table[x0]) * (context - x0) / (x1 - x0)

    def prefill_ms(self, context: int, batch: int) -> float:
        """Per-token time for a batch of ``batch`` new tokens after ``context`` cached ones."""
        per_batch = {b: self._at_context({c: self.prefill[(c, b)] for c in CONTEXTS}, context) for b in BATCHES}
        bs = sorted(per_batch)
        if batch <= bs[0]:
            return per_batch[bs[0]]
        if batch >= bs[-1]:
            return per_batch[bs[-1]]
        i = bisect.bisect_left(bs, batch)
        b0, b1 = bs[i - 1], bs[i]
        return per_batch[b0] + (per_batch[b1] - per_batch[b0]) * (batch - b0) / (b1 - b0)

    def decode_ms(self, context: int) -> float:
        return self._at_context(self.decode, context)

    def floor_s(self, context: int, new: int, out: int) -> float:
        return (new * self.prefill_ms(context, max(new, 1)) + out * self.decode_ms(context)) / 1000


def _call(engine: LlamaCppEngine, messages: list[dict[str, str]], **extra: object) -> dict:
    reply, _ = engine._chat({"messages": messages, "cache_prompt": True, **extra})
    return reply["timings"]


def measure_rates(engine: LlamaCppEngine, repeats: int = 3) -> Rates:
    words = FILLER.split()
    prefill: dict[tuple[int, int], float] = {}
    decode: dict[int, float] = {}
    for context in CONTEXTS:
        # ~1.2 tokens per filler word; the cached context is primed once, then each probe adds a batch
        system = " ".join(words[i % len(words)] for i in range(int(context / 1.2)))
        base = [{"role": "system", "content": system}, {"role": "user", "content": "Listen."}]
        _call(engine, base, max_tokens=1)
        for batch in BATCHES:
            times = []
            for r in range(repeats):
                text = " ".join(f"{words[(r + i) % len(words)]}{r}" for i in range(int(batch / 2.2)))
                timing = _call(
                    engine,
                    [*base, {"role": "assistant", "content": "ok"}, {"role": "user", "content": text}],
                    max_tokens=1,
                )
                times.append(timing["prompt_ms"] / max(timing["prompt_n"], 1))
            prefill[(context, batch)] = statistics.median(times)
        times = []
        for r in range(repeats):
            story = [*base, {"role": "assistant", "content": "ok"}, {"role": "user", "content": f"Tell story {r}."}]
            timing = _call(engine, story, max_tokens=32, ignore_eos=True, temperature=0.7, seed=r)
            times.append(timing["predicted_ms"] / max(timing["predicted_n"], 1))
        decode[context] = statistics.median(times)
    return Rates(prefill, decode)


def call_overhead(engine: LlamaCppEngine, repeats: int = 5) -> dict[str, float]:
    """Median milliseconds a call spends outside the model's prefill and decode (template, tokens,
    grammar set-up, the prefix comparison, the binding), at a ~1,500-token conversation, with
    crafter-v0's LOG grammar and with none."""
    from automem.games import make_game
    from automem.memory.grammar import build_grammar
    from automem.memory.ops import Verb

    game = make_game("crafter")
    observation = game.reset(0)
    paths = ["map.md", "progress.md", "strategy.md"]
    grammar = build_grammar(verbs=set(Verb), paths=paths, actions=game.action_names(), allow_done=True,
                            allow_act=False, allow_new_paths=False, max_text_chars=96)  # fmt: skip
    system = " ".join(FILLER.split() * 70)[:6000]
    out: dict[str, float] = {}
    for label, extra in (("grammar", {"grammar": grammar}), ("none", {})):
        extra_ms = []
        for r in range(repeats):
            messages = [{"role": "system", "content": system}, {"role": "user", "content": f"{observation}\nturn {r}"}]
            start = time.perf_counter()
            reply, _ = engine._chat({"messages": messages, "cache_prompt": True, "max_tokens": 8, "seed": r, **extra})
            wall = (time.perf_counter() - start) * 1000
            timings = reply["timings"]
            extra_ms.append(wall - timings["prompt_ms"] - timings["predicted_ms"])
        out[label] = statistics.median(extra_ms)
    return out


def with_layout(structure: Structure, layout: str) -> Structure:
    """``rebuild``, or ``transcript`` with ``:GROWTH`` (its growth budget in tokens) and ``:full``
    (the whole observation in every appended step, ``context.observation``)."""
    data = json.loads(structure.model_dump_json())
    kind, *options = layout.split(":")
    data["context"]["layout"] = kind
    for option in options:
        if option in ("full", "changes"):
            data["context"]["observation"] = option
        elif option in ("keep", "drop"):
            data["context"]["past_turns"] = option
        else:
            data["context"]["transcript_growth"] = int(option)
    data["name"] = f"{structure.name}-{layout.replace(':', '-')}"
    return Structure.model_validate(data)


def episode_figures(store: Store, run_id: int, rates: Rates, wall: float) -> dict[str, float]:
    """The run's figures per step over all its episodes (progression: their mean at the end)."""
    episodes = store.episodes(run_id)
    steps, calls, ends, rebuilds = [], [], [], 0
    for episode in episodes:
        played = store.steps(episode["id"])
        steps += played
        calls += store.calls_of(episode["id"])
        ends.append(played[-1]["progression"] if played else 0.0)
        lengths = store.step_prompt_tokens(episode["id"])
        rebuilds += sum(1 for a, b in zip(lengths, lengths[1:], strict=False) if b < a)
    n = max(len(steps), 1)
    new = sum(c["input_tokens"] - c["cached_tokens"] for c in calls)
    total = sum(c["input_tokens"] for c in calls)
    out = sum(c["output_tokens"] for c in calls)
    floor = sum(
        rates.floor_s(c["cached_tokens"], c["input_tokens"] - c["cached_tokens"], c["output_tokens"]) for c in calls
    )
    model = sum(c["latency_s"] for c in calls)
    return {
        "steps": len(steps),
        "new/step": new / n,
        "out/step": out / n,
        "cached": sum(c["cached_tokens"] for c in calls) / total if total else 0.0,
        "calls/step": len(calls) / n,
        "prompt/call": total / max(len(calls), 1),
        "rebuilds": rebuilds,
        "floor s": floor / n,
        "model s": model / n,
        "wall s": wall / n,
        "model/floor": model / floor if floor else 0.0,
        "invalid": sum(1 - c["valid"] for c in calls),
        "progression": statistics.mean(ends) if ends else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[9], help="one episode per seed and layout")
    parser.add_argument("--games", nargs="+", default=list(GAMES), choices=list(GAMES))
    parser.add_argument(
        "--layouts", nargs="+", default=["transcript", "rebuild"], help="transcript[:GROWTH][:full][:keep] | rebuild"
    )
    parser.add_argument("--cache-type-k", choices=CACHE_TYPES, help="the key cache's type (default: the engine's)")
    args = parser.parse_args()
    engine = LlamaCppEngine(bundled_model_path(), cache_type_k=args.cache_type_k)
    t0 = time.perf_counter()
    rates = measure_rates(engine)
    print(f"model speed ({time.perf_counter() - t0:.0f} s to measure), ms per token:")
    print("  context  " + "  ".join(f"prefill@{b:<3}" for b in BATCHES) + "  decode")
    for c in CONTEXTS:
        print(f"  {c:7}  " + "  ".join(f"{rates.prefill[(c, b)]:11.1f}" for b in BATCHES) + f"  {rates.decode[c]:6.1f}")
    overhead = call_overhead(engine)
    print(f"per-call time outside prefill and decode: {overhead['grammar']:.1f} ms with a LOG grammar, "
          f"{overhead['none']:.1f} ms without")  # fmt: skip
    keys = ["new/step", "out/step", "cached", "calls/step", "prompt/call", "rebuilds", "floor s", "model s",
            "wall s", "model/floor", "invalid", "progression"]  # fmt: skip
    print(f"\n{'game':9} {'layout':16} " + " ".join(f"{k:>11}" for k in keys), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "floor.db")
        for game in args.games:
            name, task = GAMES[game]
            results = {}
            for layout in args.layouts:
                structure = with_layout(load_builtin(name), layout)
                t1 = time.perf_counter()
                run_id, _ = execute_run(
                    RunConfig(
                        game=game,
                        task=task,
                        seeds=args.seeds,
                        structure=structure,
                        engine_spec="llamacpp",
                        max_steps=args.steps,
                        run_name=f"{game}-{layout}",
                    ),  # fmt: skip
                    store,
                    engine,
                )
                figures = episode_figures(store, run_id, rates, time.perf_counter() - t1)
                results[layout] = figures
                print(f"{game:9} {layout:16} " + " ".join(f"{figures[k]:11.3g}" for k in keys), flush=True)
            if {"transcript", "rebuild"} <= results.keys():
                a, b = results["transcript"], results["rebuild"]
                ratio = {k: b[k] / max(a[k], 1e-9) for k in ("new/step", "model s", "wall s")}
                print(
                    f"{game:9} gain new tokens x{ratio['new/step']:.2f} fewer, model time x{ratio['model s']:.2f}, "
                    f"wall x{ratio['wall s']:.2f} (rebuild / transcript)",
                    flush=True,
                )
        store.close()
    engine.close()


if __name__ == "__main__":
    main()
