"""Harness overhead per step, per game: everything except the model's generation and the game's
own step (prompt assembly, grammar, parsing, memory operations, helpers, observation and frame
rendering, the SQLite writes).

The model is replaced by a scripted engine that answers instantly with a fixed, valid pattern per
step (LOG: one append then DONE; PLAN: one view then a random action), so what remains is the
harness. Real games, a real memory folder, a real SQLite file in a temp dir.

    python bench/harness_overhead.py [--steps 300] [--games crafter nethack minihack]
    python bench/harness_overhead.py --real 20   # with the bundled model; reads harness_s back
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from automem.engines.base import Completion, Message
from automem.games import Game, make_game
from automem.memory.structure import Structure, load_builtin
from automem.runs.episode import EpisodeRunner
from automem.store import Store

TASKS = {"crafter": None, "nethack": None, "minihack": "MazeWalk-15x15"}


class ScriptedEngine:
    """Answers instantly; takes the turn's kind from the grammar it is given."""

    name = "scripted"
    model = "scripted"
    supports_grammar = True

    def __init__(self, actions: list[str], seed: int = 0) -> None:
        self.actions = actions
        self.rng = random.Random(seed)

    def complete(self, messages: list[Message], *, grammar=None, max_tokens=64, temperature=0.7, seed=None):
        grammar = grammar or ""
        fresh = "Current observation:" in messages[-1]["content"]
        if "done ::=" in grammar:
            text = "append actions.md: moved and looked around" if fresh and "append ::=" in grammar else "DONE"
        elif "view ::=" in grammar and not messages[-1]["content"].startswith(("ok", "refused", "1:", "(")):
            text = "view map.md"
        else:
            text = "ACT " + self.rng.choice(self.actions)
        return Completion(text=text, input_tokens=1, cached_tokens=0, output_tokens=1, latency_s=0.0)

    def close(self) -> None:
        pass


def scripted_setup(game_name: str, db: Path) -> tuple[Game, Store, Structure, int]:
    """A game, a fresh store with a run row, and the game's built-in structure."""
    game = make_game(game_name, TASKS[game_name])
    store = Store(db)
    structure = load_builtin(f"{game_name}-v0")
    run_id = store.create_run(name=f"bench-{game_name}", game=game_name, task=game.task,
                              structure_id=store.save_structure(structure), engine="scripted",
                              memory_engine=None, config={})  # fmt: skip
    return game, store, structure, run_id


def bench_game(game_name: str, steps: int, tmp: Path) -> list[float]:
    game, store, structure, run_id = scripted_setup(game_name, tmp / f"{game_name}.db")
    engine = ScriptedEngine(game.action_names())
    overheads: list[float] = []
    seed = 0
    while len(overheads) < steps:
        runner = EpisodeRunner.start(
            store=store,
            run_id=run_id,
            game=game,
            structure=structure,
            engine=engine,
            seed=seed,
            memory_dir=tmp / f"mem-{game_name}-{seed}",
            max_steps=steps,
        )
        gen = runner.steps()
        last = time.perf_counter()
        for event in gen:
            now = time.perf_counter()
            if event.step > 0:  # step 0 includes the game's reset
                overheads.append(now - last - event.record.model_s - event.record.game_s)
            last = time.perf_counter()
            if len(overheads) >= steps:
                gen.close()
                break
        seed += 1
    store.close()
    game.close()
    return overheads


def real(steps: int, tmp: Path) -> None:
    from automem.engines import make_engine
    from automem.runs import RunConfig, execute_run

    engine = make_engine("llamacpp")
    store = Store(tmp / "real.db")
    for game_name in TASKS:
        config = RunConfig(
            game=game_name,
            task=TASKS[game_name],
            seeds=[0],
            structure=load_builtin(f"{game_name}-v0"),
            engine_spec="llamacpp",
            max_steps=steps,
        )
        execute_run(config, store, engine)
        rows = store.db.execute(
            "select s.harness_s, s.model_s, s.game_s from steps s join episodes e on e.id = s.episode_id "
            "where e.game = ?",
            [game_name],
        ).fetchall()
        harness = [r[0] * 1000 for r in rows]
        model = [r[1] for r in rows]
        print(
            f"{game_name:9} real model: harness median {statistics.median(harness):.2f} ms "
            f"(harness_s column, excludes the step's own store write), "
            f"model median {statistics.median(model):.2f} s/step, {len(rows)} steps"
        )
    engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--games", nargs="+", default=list(TASKS))
    parser.add_argument("--real", type=int, default=0, help="also run N steps per game with the bundled model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"harness overhead per step ({args.steps} steps per game, scripted engine)")
        for game_name in args.games:
            ms = sorted(x * 1000 for x in bench_game(game_name, args.steps, Path(tmp)))
            p90 = ms[int(0.9 * (len(ms) - 1))]
            print(f"{game_name:9} median {statistics.median(ms):.3f} ms  p90 {p90:.3f} ms  max {ms[-1]:.3f} ms")
        if args.real:
            real(args.real, Path(tmp))


if __name__ == "__main__":
    main()
