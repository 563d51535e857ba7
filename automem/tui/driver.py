"""Runs an episode on a background thread, commanded by the play screen.

The game, the agent and the store are used from this one thread only; the screen sends commands
through a queue and gets results back as messages, so the UI never waits on the model. A model
turn cannot be cut short, so pause, step and quit take effect at the next turn boundary; quitting
records what an unfinished step already did and marks the episode interrupted.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automem.agent.loop import AgentError, TurnEvent
from automem.engines.base import Engine
from automem.games.base import Frame
from automem.runs.episode import EpisodeRunner, StepEvent


@dataclass
class EpisodeSpec:
    game: str
    task: str | None
    seed: int
    structure: Any  # Structure
    engine_spec: str
    memory_engine_spec: str | None = None
    max_steps: int = 10_000
    temperature: float = 0.7
    engine_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Started:
    runner: EpisodeRunner
    observation: str
    memory: dict[str, str]
    frame: Frame


@dataclass
class Advanced:
    """One turn or one step happened; ``memory`` is the folder after it. After a step, ``frame``
    and ``observation`` are the game's next screen (read here: the game belongs to this thread)."""

    event: TurnEvent | StepEvent
    memory: dict[str, str]
    frame: Frame | None = None
    observation: str | None = None


@dataclass
class HumanDone:
    message: str
    ok: bool
    memory: dict[str, str]
    path: str | None = None


@dataclass
class Ended:
    summary: Any  # EpisodeSummary


@dataclass
class Failed:
    message: str


Report = Started | Advanced | HumanDone | Ended | Failed


class Driver:
    """Owns the runner; ``post`` delivers reports to the UI (thread-safe in Textual)."""

    def __init__(self, store: Any, memory_root: Path, post: Callable[[Report], None]) -> None:
        self.store = store
        self.memory_root = memory_root
        self.post = post
        self.runner: EpisodeRunner | None = None
        self.running = False  # play continuously
        self.step_budget = 0  # whole steps still to play while paused
        self.turn_budget = 0  # single model turns still to play while paused
        self.delay = 0.0  # seconds between steps while running
        self.commands: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.stop = threading.Event()
        self.busy = threading.Event()  # set while the model is generating
        self.started = threading.Event()
        self.done = threading.Event()  # set when the thread has closed the episode and engines
        self._engines: dict[tuple[str, str], Engine] = {}
        self._run_id: int | None = None

    # -- called from the UI thread ----------------------------------------------------------
    def send(self, command: str, payload: Any = None) -> None:
        self.commands.put((command, payload))

    # -- the thread -------------------------------------------------------------------------
    def loop(self) -> None:
        self.started.set()
        try:
            while not self.stop.is_set():
                wants_turn = (
                    self.runner is not None
                    and not self.runner.ended
                    and (self.running or self.step_budget > 0 or self.turn_budget > 0)
                )
                try:
                    command, payload = self.commands.get(timeout=0 if wants_turn else 0.1)
                except queue.Empty:
                    command = None
                if command is not None:
                    self._handle(command, payload)
                elif wants_turn:
                    self._turn()
        finally:
            try:
                self._close_episode()
                for engine in self._engines.values():
                    engine.close()
            finally:
                self.done.set()

    def _handle(self, command: str, payload: Any) -> None:
        try:
            if command == "new":
                self._new_episode(payload)
            elif command == "action":
                self._human_action(payload)
            elif command == "op":
                self._human_op(payload)
            elif command == "edit":
                self._human_edit(*payload)
        except Exception as exc:  # one error handler: every failure becomes a message, never a crash
            self.post(Failed(f"{type(exc).__name__}: {exc}"))

    def _engine(self, spec: str, options: dict[str, Any]) -> Engine:
        from automem.engines import make_engine, resolve_engine_spec, split_spec

        key = (spec, repr(sorted(options.items())))
        if key not in self._engines:
            resolved, profile = resolve_engine_spec(spec)
            merged = {**profile, **options}
            if split_spec(resolved)[0] == "llamacpp" and "n_threads" not in merged:
                # leave one core to the UI: with every core busy in llama.cpp's thread pool, a
                # 2-core machine took twice as long per prompt and answered keys late
                merged["n_threads"] = max(1, (os.cpu_count() or 2) - 1)
            self._engines[key] = make_engine(resolved, **merged)
        return self._engines[key]

    def _new_episode(self, spec: EpisodeSpec) -> None:
        from automem.games import make_game
        from automem.runs.run import check_structure_fits, default_run_name, safe_name

        self._close_episode()
        check_structure_fits(spec.structure, spec.game)
        game = make_game(spec.game, spec.task)
        engine = self._engine(spec.engine_spec, spec.engine_options)
        memory_engine = self._engine(spec.memory_engine_spec, {}) if spec.memory_engine_spec else None
        name = "tui-" + default_run_name(spec.game, spec.structure.name)
        sid = self.store.save_structure(spec.structure)
        run_id = self.store.create_run(
            name=name,
            game=spec.game,
            task=game.task,
            structure_id=sid,
            engine=spec.engine_spec,
            memory_engine=spec.memory_engine_spec,
            config={"source": "tui", "seed": spec.seed, "max_steps": spec.max_steps, "temperature": spec.temperature},
        )
        self._run_id = run_id
        self.runner = EpisodeRunner.start(
            store=self.store,
            run_id=run_id,
            game=game,
            structure=spec.structure,
            engine=engine,
            seed=spec.seed,
            memory_dir=self.memory_root / safe_name(name) / f"seed-{spec.seed}",
            max_steps=spec.max_steps,
            temperature=spec.temperature,
            memory_engine=memory_engine,
        )
        observation = self.runner.begin()
        self.post(Started(self.runner, observation, self.runner.memory.snapshot(), game.frame()))

    def _turn(self) -> None:
        runner = self.runner
        assert runner is not None
        self.busy.set()
        try:
            event = runner.next_turn()
        except AgentError as exc:
            self.running, self.step_budget, self.turn_budget = False, 0, 0
            self.post(Failed(f"the engine keeps failing: {exc}"))
            self._end()
            return
        finally:
            self.busy.clear()
        if self.turn_budget > 0:
            self.turn_budget -= 1
        if isinstance(event, StepEvent) and self.step_budget > 0:
            self.step_budget -= 1
        self.post(self._advanced(runner, event))
        if runner.ended:
            self._end()
        elif isinstance(event, StepEvent) and self.running and self.delay:
            self.stop.wait(self.delay)  # wakes at once on quit

    def _human_action(self, action: str) -> None:
        runner = self._require()
        event = runner.take_over(action)
        self.post(self._advanced(runner, event))
        if runner.ended:
            self._end()

    @staticmethod
    def _advanced(runner: EpisodeRunner, event: TurnEvent | StepEvent) -> Advanced:
        if isinstance(event, StepEvent):
            return Advanced(event, runner.memory.snapshot(), runner.game.frame(), runner.observation)
        return Advanced(event, runner.memory.snapshot())

    def _human_op(self, operation: Any) -> None:
        runner = self._require()
        result = runner.human_operation(operation)
        self.post(HumanDone(result.message, result.ok, runner.memory.snapshot(), result.path))

    def _human_edit(self, path: str, text: str) -> None:
        runner = self._require()
        result = runner.edit_file(path, text)
        self.post(HumanDone(result.message, result.ok, runner.memory.snapshot(), result.path))

    def _require(self) -> EpisodeRunner:
        if self.runner is None or self.runner.ended:
            raise RuntimeError("no episode is running: start one with n")
        return self.runner

    def _end(self) -> None:
        runner = self.runner
        if runner is not None and self._run_id is not None:
            self.store.finish_run(self._run_id, runner.summary.status)
            self.post(Ended(runner.summary))
            self._run_id = None

    def _close_episode(self) -> None:
        runner = self.runner
        if runner is not None and not runner.ended:
            runner.close()
        self._end()
