"""Engine overhead: tokens per second through automem's llamacpp engine vs the same xllamacpp
server called directly on the same prompt, grammar and sampling settings (same process, same
model); plus the model's raw prefill and decode rates (prompt and output tokens per second, from
llama.cpp's own timings).

    python bench/engine_overhead.py [--repeats 5] [--max-tokens 48]
"""

from __future__ import annotations

import argparse
import statistics
import time

from automem.engines.bundled import bundled_model_path
from automem.engines.llamacpp import LlamaCppEngine
from automem.games import make_game
from automem.memory.grammar import build_grammar
from automem.memory.ops import Verb

TEXT_GRAMMAR_VERBS = {Verb.APPEND, Verb.VIEW, Verb.UPSERT}


def prompt_and_grammar() -> tuple[list[dict[str, str]], str]:
    game = make_game("crafter")
    observation = game.reset(0)
    actions = game.action_names()
    messages = [
        {"role": "system", "content": "You play Crafter. Answer with one command.\n" + "\n".join(actions)},
        {"role": "user", "content": observation + "\nLOG: note what you see with one memory command."},
    ]
    grammar = build_grammar(
        verbs=TEXT_GRAMMAR_VERBS,
        paths=["map.md", "progress.md"],
        actions=actions,
        allow_done=True,
        allow_act=False,
        allow_new_paths=False,
        max_text_chars=90,
    )
    return messages, grammar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    messages, grammar = prompt_and_grammar()
    engine = LlamaCppEngine(bundled_model_path(), n_ctx=4096, n_threads=args.threads)
    server = engine._server  # the very same server, called directly
    ours, direct, prefill, decode = [], [], [], []
    for i in range(args.repeats):
        # alternate, and change the first message each time, so both pay the same prompt evaluation
        fresh = [{"role": "system", "content": f"[{i}a] " + messages[0]["content"]}, messages[1]]
        c = engine.complete(fresh, grammar=grammar, max_tokens=args.max_tokens, temperature=0.7, seed=i)
        ours.append((c.input_tokens + c.output_tokens) / c.latency_s)
        fresh = [{"role": "system", "content": f"[{i}b] " + messages[0]["content"]}, messages[1]]
        request = {"messages": fresh, "grammar": grammar, "max_tokens": args.max_tokens, "temperature": 0.7, "seed": i}
        t0 = time.perf_counter()
        out = server.handle_chat_completions(request)
        dt = time.perf_counter() - t0
        usage, timings = out["usage"], out["timings"]
        direct.append((usage["prompt_tokens"] + usage["completion_tokens"]) / dt)
        prefill.append(timings["prompt_per_second"])
        decode.append(timings["predicted_per_second"])
    a, b = statistics.median(ours), statistics.median(direct)
    print(
        f"automem llamacpp engine: {a:.1f} tok/s (prompt+output), xllamacpp server direct: {b:.1f} tok/s; "
        f"ratio {a / b:.3f} over {args.repeats} calls each"
    )
    print(
        f"model rates (llama.cpp's timings, {usage['prompt_tokens']}-token prompt): "
        f"prefill {statistics.median(prefill):.0f} tok/s, "
        f"decode {statistics.median(decode):.0f} tok/s (grammar-constrained)"
    )
    engine.close()


if __name__ == "__main__":
    main()
