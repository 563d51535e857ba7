"""One episode: a game, an agent with its memory folder, and the store, step by step."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

from automem.agent.loop import Agent, AgentError, Decision, drain
from automem.engines.base import Engine
from automem.games.base import Game
from automem.memory.folder import MemoryFolder
from automem.memory.structure import Structure
from automem.store.db import StepRecord, Store


@dataclass
class StepEvent:
    step: int
    observation: str
    decision: Decision
    reward: float
    done: bool
    progression: float
    unlocked: list[str]
    record: StepRecord


@dataclass
class EpisodeSummary:
    episode_id: int
    seed: int
    status: str  # finished | failed | interrupted
    steps: int = 0
    progression: float = 0.0
    achievements: list[str] = field(default_factory=list)
    total_reward: float = 0.0
    ended_reason: str | None = None
    error: str | None = None
    invalid_outputs: int = 0
    llm_calls: int = 0
    memory_ops: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    model_s: float = 0.0
    wall_s: float = 0.0


def prepare_memory(structure: Structure, folder: Path, *, fresh: bool) -> MemoryFolder:
    """Create the episode's memory folder and its seed files (a carried-over folder keeps its notes)."""
    if fresh and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    memory = MemoryFolder(folder, structure.memory_limits(), enabled=structure.verbs())
    memory.seed(structure.seed_files())  # keeps files that exist (scope "run" carries them over)
    return memory


class EpisodeRunner:
    def __init__(
        self,
        *,
        store: Store,
        run_id: int,
        game: Game,
        structure: Structure,
        engine: Engine,
        seed: int,
        memory_dir: Path,
        max_steps: int,
        temperature: float = 0.7,
        memory_engine: Engine | None = None,
    ) -> None:
        self.store = store
        self.game = game
        self.structure = structure
        self.engine = engine
        self.seed = seed
        self.max_steps = max_steps
        fresh = structure.context.scope == "episode"
        self.memory = prepare_memory(structure, memory_dir, fresh=fresh)
        self.agent = Agent(
            structure, game, engine, self.memory, temperature=temperature, seed=seed, memory_engine=memory_engine
        )
        structure_id = store.save_structure(structure)
        self.episode_id = store.start_episode(
            run_id=run_id,
            game=game.name,
            task=game.task,
            seed=seed,
            structure_id=structure_id,
            engine=engine.name,
            model=engine.model,
            memory_dir=str(memory_dir),
            memory_seed=self.memory.snapshot(),
        )
        self.summary = EpisodeSummary(episode_id=self.episode_id, seed=seed, status="running")

    def steps(self) -> Generator[StepEvent, None, EpisodeSummary]:
        """Play until the game ends or ``max_steps``; every step is stored before it is yielded."""
        summary = self.summary
        started = time.perf_counter()
        try:
            observation = self.game.reset(self.seed)
            previous = set(self.game.achievements())
            for index in range(self.max_steps):
                t0 = time.perf_counter()
                frame = self.game.frame().to_dict()
                decision = self.agent.decide(observation, index)
                g0 = time.perf_counter()
                result = self.game.step(decision.action)
                game_s = time.perf_counter() - g0
                achievements = self.game.achievements()
                unlocked = [a for a in achievements if a not in previous]
                previous.update(unlocked)
                progression = self.game.progression()
                self.agent.observe_outcome(index, decision, result.reward, unlocked)
                record = StepRecord(
                    step=index,
                    observation=observation,
                    helper_notes="\n".join(decision.notes),
                    frame=frame,
                    action=decision.action,
                    action_source=decision.source,
                    reward=float(result.reward),
                    done=result.done,
                    progression=progression,
                    achievements=list(achievements),
                    invalid_outputs=decision.invalid,
                    model_s=decision.model_s,
                    game_s=game_s,
                    calls=decision.calls,
                    ops=decision.ops,
                )
                record.harness_s = max(0.0, time.perf_counter() - t0 - decision.model_s - game_s)
                self.store.record_step(self.episode_id, record)
                self._accumulate(record)
                summary.progression, summary.achievements = progression, list(achievements)
                yield StepEvent(index, observation, decision, result.reward, result.done, progression, unlocked, record)
                observation = result.observation
                if result.done:
                    summary.ended_reason = self.game.ended_reason or "done"
                    break
            else:
                summary.ended_reason = "max steps"
            summary.status = "finished"
        except AgentError as exc:
            summary.status, summary.error = "failed", str(exc)
        except (KeyboardInterrupt, GeneratorExit):
            summary.status, summary.ended_reason = "interrupted", "interrupted"
            self._finish(started)
            raise
        self._finish(started)
        return summary

    def run(self, on_step: Callable[[StepEvent], None] | None = None) -> EpisodeSummary:
        return drain(self.steps(), on_step)

    def _accumulate(self, record: StepRecord) -> None:
        s = self.summary
        s.steps = record.step + 1
        s.total_reward += record.reward
        s.invalid_outputs += record.invalid_outputs
        s.llm_calls += len(record.calls)
        s.memory_ops += len(record.ops)
        s.input_tokens += sum(c.input_tokens for c in record.calls)
        s.cached_tokens += sum(c.cached_tokens for c in record.calls)
        s.output_tokens += sum(c.output_tokens for c in record.calls)
        s.model_s += record.model_s

    def _finish(self, started: float) -> None:
        s = self.summary
        s.wall_s = time.perf_counter() - started
        self.store.finish_episode(self.episode_id, status=s.status, ended_reason=s.ended_reason, error=s.error)
