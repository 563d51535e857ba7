"""Engine overhead: tokens per second through automem's llamacpp engine vs llama-cpp-python called
directly on the same prompt, grammar and sampling settings (same process, same model file).

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
    args = parser.parse_args()
    from llama_cpp import LlamaGrammar

    messages, grammar = prompt_and_grammar()
    engine = LlamaCppEngine(bundled_model_path(), n_ctx=4096)
    llm = engine._llm  # the very same Llama object, called directly
    ours, direct = [], []
    for i in range(args.repeats):
        # alternate, and reset the KV cache each time, so both pay the same prompt evaluation
        llm.reset()
        c = engine.complete(messages, grammar=grammar, max_tokens=args.max_tokens, temperature=0.7, seed=i)
        ours.append((c.input_tokens + c.output_tokens) / c.latency_s)
        llm.reset()
        llm.set_seed(i)
        t0 = time.perf_counter()
        out = llm.create_chat_completion(
            messages=messages,
            grammar=LlamaGrammar.from_string(grammar, verbose=False),
            max_tokens=args.max_tokens,
            temperature=0.7,
        )
        dt = time.perf_counter() - t0
        usage = out["usage"]
        direct.append((usage["prompt_tokens"] + usage["completion_tokens"]) / dt)
    a, b = statistics.median(ours), statistics.median(direct)
    print(
        f"automem llamacpp engine: {a:.1f} tok/s (prompt+output), llama-cpp-python direct: {b:.1f} tok/s; "
        f"ratio {a / b:.3f} over {args.repeats} calls each"
    )
    engine.close()


if __name__ == "__main__":
    main()
