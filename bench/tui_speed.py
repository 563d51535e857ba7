"""TUI speed: scrubbing a 1,000-step NetHack replay, and how fast a key takes effect while the
bundled model is generating.

    python bench/tui_speed.py [--steps 1000] [--keys 20]

1. Records a NetHack episode of ``--steps`` steps into a temporary store (a person's random moves
   through EpisodeRunner.take_over plus a memory write every 10 steps: the real game, the real
   store, no model), then opens the replay screen headless and presses "right" through every step.
   Reported: steps shown per second (each key handled, the step's frame, memory folder and turns
   rebuilt, every widget's refresh and layout messages handled), and the time of ``show_step`` alone.
2. Opens the play screen with the bundled model running and, each time the model is generating,
   presses space (pause / run) and measures until the screen's state has changed. Keys are sent
   as the terminal driver sends them: Pilot.press waits for the process to go idle, which it never
   does while the model computes.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from automem.engines.base import PersonOnly
from automem.games import make_game
from automem.memory.structure import load_builtin
from automem.memory.syntax import parse_command
from automem.runs.episode import EpisodeRunner
from automem.store import Store
from automem.tui.app import AutomemApp
from automem.tui.context import TuiContext

SIZE = (160, 48)


def record_nethack(store: Store, root: Path, steps: int) -> int:
    structure = load_builtin("nethack-v0")
    game = make_game("nethack")
    run_id = store.create_run(
        name="bench-scrub", game="nethack", task=game.task, structure_id=store.save_structure(structure),
        engine="human", memory_engine=None, config={},
    )  # fmt: skip
    runner = EpisodeRunner.start(
        store=store, run_id=run_id, game=game, structure=structure, engine=PersonOnly(), seed=1,
        memory_dir=root / "mem", max_steps=steps,
    )  # fmt: skip
    rng = random.Random(0)
    moves = ["north", "south", "east", "west", "northeast", "northwest", "southeast", "southwest", "search"]
    runner.begin()
    while not runner.ended:
        if runner.index % 10 == 0:
            runner.human_operation(parse_command(f"APPEND progress.md :: step {runner.index}: exploring"))
        runner.take_over(rng.choice(moves))
        if runner.ended and runner.index < steps:  # died: keep going in a fresh episode is not the point
            break
    return runner.episode_id


def _send_key(app: AutomemApp, key: str) -> None:
    from textual import events

    event = events.Key(key, " " if key == "space" else None)
    event.set_sender(app)
    app._driver.send_message(event)  # type: ignore[union-attr]


async def scrub(store: Store, episode_id: int) -> dict[str, float]:
    app = AutomemApp(TuiContext(store=store, extra={"episode": episode_id}), mode="replay")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        total = len(screen.replay)
        t0 = time.perf_counter()
        for index in range(1, total):
            # the key goes in as a terminal would send it; Pilot.press would add its own idle waits
            _send_key(app, "right")
            while screen.index != index:
                await asyncio.sleep(0)
            await pilot._wait_for_screen()  # every widget has handled its refresh and layout messages
        elapsed = time.perf_counter() - t0
        assert screen.index == total - 1
        show = []
        for index in range(0, total, max(1, total // 200)):
            s0 = time.perf_counter()
            screen.show_step(index)
            show.append(time.perf_counter() - s0)
        rows = []
        for index in range(1, min(total, 300)):
            screen.show_step(index)
            rows.append(screen.query_one("#replay-panes").game.last_changed_rows)
    return {
        "steps": total,
        "steps_per_s": (total - 1) / elapsed,
        "show_step_ms_median": statistics.median(show) * 1000,
        "show_step_ms_p95": sorted(show)[int(len(show) * 0.95)] * 1000,
        "rows_redrawn_median": statistics.median(rows),
    }


async def key_latency(store: Store, presses: int) -> dict[str, float]:
    ctx = TuiContext(store=store, game="crafter", seed=0)
    app = AutomemApp(ctx, mode="play")
    samples: list[float] = []
    during_generation = 0
    async with app.run_test(size=SIZE):
        screen = app.screen
        while len(samples) < presses:
            deadline = time.monotonic() + 120
            while not screen.driver.busy.is_set():  # wait until the model is generating
                if time.monotonic() > deadline:
                    raise RuntimeError("the model never started generating")
                await asyncio.sleep(0.005)
            before = screen.state
            busy = screen.driver.busy.is_set()
            t0 = time.perf_counter()
            _send_key(app, "space")
            while screen.state == before:
                await asyncio.sleep(0.001)
            samples.append(time.perf_counter() - t0)
            during_generation += busy and screen.driver.busy.is_set()
            if screen.state == "paused":
                _send_key(app, "space")  # run again for the next sample
            await asyncio.sleep(0.3)
        await app.action_quit()
    samples.sort()
    return {
        "presses": len(samples),
        "while_generating": during_generation,
        "latency_ms_median": statistics.median(samples) * 1000,
        "latency_ms_p95": samples[int(len(samples) * 0.95) - 1] * 1000,
        "latency_ms_max": samples[-1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--keys", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        t0 = time.perf_counter()
        episode_id = record_nethack(store, Path(tmp), args.steps)
        print(f"recorded a {len(store.steps(episode_id))}-step NetHack episode in {time.perf_counter() - t0:.1f} s")
        result = asyncio.run(scrub(store, episode_id))
        print(
            f"replay scrub: {result['steps']} steps at {result['steps_per_s']:.1f} steps/s through key presses; "
            f"show_step median {result['show_step_ms_median']:.1f} ms, p95 {result['show_step_ms_p95']:.1f} ms; "
            f"game rows redrawn per step (median of 24): {result['rows_redrawn_median']:.0f}"
        )
        if args.keys:
            lat = asyncio.run(key_latency(store, args.keys))
            print(
                f"key while generating: {lat['presses']} presses ({lat['while_generating']} with the model still "
                f"generating after the key took effect); median {lat['latency_ms_median']:.1f} ms, "
                f"p95 {lat['latency_ms_p95']:.1f} ms, max {lat['latency_ms_max']:.1f} ms"
            )
        store.close()


if __name__ == "__main__":
    main()
