"""One episode: a game, an agent with its memory folder, and the store, step by step."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

from automem.agent.loop import Agent, AgentError, StepChoice, TurnEvent, drain
from automem.engines.base import Engine
from automem.games.base import Game
from automem.memory.folder import MemoryFolder
from automem.memory.ops import Operation, OpResult
from automem.memory.structure import Structure
from automem.records import CallRecord, OpRecord, StepRecord
from automem.store.db import Store


class EpisodeOver(Exception):
    """The episode has ended; start a new one."""


@dataclass
class StepEvent:
    step: int
    observation: str
    decision: StepChoice
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


def prepare_memory(
    structure: Structure, folder: Path, *, fresh: bool, restore: dict[str, str] | None = None
) -> MemoryFolder:
    """Create the episode's memory folder and its seed files (a carried-over folder keeps its notes).

    ``restore``: the folder is made exactly these files first (the end of the episode a chain
    continues from), whatever an interrupted attempt left in it."""
    if (fresh or restore is not None) and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    memory = MemoryFolder(folder, structure.memory_limits(), enabled=structure.verbs())
    if restore:
        memory.seed(restore)  # through the folder's own confined writes, like the seed files
    memory.seed(structure.seed_files())  # keeps files that exist (scope "run" carries them over)
    return memory


class EpisodeRunner:
    """One episode, stepped by a front end (``run``, ``eval``'s workers, the TUI driver).

    Build it with :meth:`start`, the one way an episode begins: it prepares the memory folder and
    records the episode's row. The constructor only holds what ``start`` prepared."""

    @classmethod
    def start(
        cls,
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
        carry: tuple[int, dict[str, str]] | None = None,
    ) -> EpisodeRunner:
        """Prepare the episode's memory folder (emptied for an episode-scoped structure, restored from
        ``carry`` = (episode id, its folder at its end) in a run-scoped chain) and record its row."""
        fresh = structure.context.scope == "episode"
        memory = prepare_memory(structure, memory_dir, fresh=fresh, restore=carry[1] if carry else None)
        agent = Agent(structure, game, engine, memory, temperature=temperature, seed=seed, memory_engine=memory_engine)
        episode_id = store.start_episode(
            run_id=run_id,
            game=game.name,
            task=game.task,
            seed=seed,
            structure_id=store.save_structure(structure),
            engine=engine.name,
            model=engine.model,
            memory_dir=str(memory_dir),
            memory_seed=memory.snapshot(),
            memory_from=carry[0] if carry else None,
        )
        return cls(store=store, agent=agent, max_steps=max_steps, episode_id=episode_id)

    def __init__(self, *, store: Store, agent: Agent, max_steps: int, episode_id: int) -> None:
        self.store = store
        self.agent = agent
        self.max_steps = max_steps
        self.episode_id = episode_id
        # the agent holds the game, structure, engine, seed and memory folder it plays with
        self.game, self.structure, self.engine = agent.game, agent.structure, agent.engine
        self.seed, self.memory = agent.seed, agent.memory
        self.summary = EpisodeSummary(episode_id=self.episode_id, seed=self.seed, status="running")
        self.observation: str | None = None
        self.index = 0
        self._turns: Generator[TurnEvent, None, StepChoice] | None = None
        self._previous: set[str] = set()
        self._frame: dict[str, object] = {}
        self._t0 = 0.0
        self._started: float | None = None
        self._human_ops: list[OpRecord] = []

    # -- stepping: a front end may advance one model turn at a time, take over, or edit memory --
    @property
    def ended(self) -> bool:
        return self.summary.status != "running"

    @property
    def mid_step(self) -> bool:
        """True when some of the current step's model turns have run but its action is not played."""
        return self._turns is not None

    def begin(self) -> str:
        """Reset the game (once); returns the first observation."""
        if self.observation is None:
            self._started = time.perf_counter()
            self.observation = self.game.reset(self.seed)
            self._previous = set(self.game.achievements())
        return self.observation

    def next_turn(self) -> TurnEvent | StepEvent:
        """One model turn of the current step; once the step's action is decided it is played,
        stored and returned as a StepEvent. Raises AgentError (episode ended as failed)."""
        observation = self.begin()
        if self.ended:
            raise EpisodeOver(f"episode {self.episode_id} is {self.summary.status}")
        if self._turns is None:
            self._t0 = time.perf_counter()
            self._frame = self.game.frame().to_dict()
            self._turns = self.agent.turns(observation, self.index)
        try:
            return next(self._turns)
        except StopIteration as stop:
            self._turns = None
            return self._commit(stop.value)
        except Exception as exc:
            # an AgentError (the engine failed too often), or a bug or an engine failure that is no
            # EngineError: the episode ends failed with the reason, never left running; the caller
            # still sees the exception
            self._turns = None
            self._fail(str(exc) if isinstance(exc, AgentError) else f"{type(exc).__name__}: {exc}")
            raise

    def finish_step(self) -> StepEvent:
        """Run the current step's remaining turns and play its action."""
        while True:
            event = self.next_turn()
            if isinstance(event, StepEvent):
                return event

    def take_over(self, action: str) -> StepEvent:
        """Play ``action`` as a person's move for the current step. Model turns already run in this
        step are kept in the record; the ones not yet run are dropped."""
        observation = self.begin()
        if self.ended:
            raise EpisodeOver(f"episode {self.episode_id} is {self.summary.status}")
        matched = self.agent.match_action(action)
        if matched is None:
            raise ValueError(f"unknown action {action!r} for {self.game.name}")
        if self._turns is not None:
            self._turns.close()
            self._turns = None
            decision = self.agent.current or StepChoice(action=matched, source="human")
        else:
            self._t0 = time.perf_counter()
            self._frame = self.game.frame().to_dict()
            decision = StepChoice(action=matched, source="human", notes=self.agent.notes(observation, self.index))
            decision.ops.extend(self.agent.take_helper_ops())
        decision.action, decision.source = matched, "human"
        return self._commit(decision)

    def human_operation(self, command: Operation) -> OpResult:
        """A memory operation typed by a person: checked like the agent's (confined, caps,
        read-only files), recorded with source ``human`` in the current step."""
        self.begin()
        return self._human_result(self.memory.execute(command))

    def edit_file(self, path: str, text: str) -> OpResult:
        """A person's edit of a whole file (may change read-only files; still confined and capped)."""
        self.begin()
        return self._human_result(self.memory.write_text_trusted(path, text))

    def close(self) -> EpisodeSummary:
        """Stop here: keep what an unfinished step did and mark the episode interrupted."""
        if not self.ended:
            calls: list[CallRecord] = []
            ops: list[OpRecord] = []
            if self._turns is not None:
                self._turns.close()
                self._turns = None
                if self.agent.current is not None:
                    calls, ops = self.agent.current.calls, self.agent.current.ops
            self.store.record_partial(self.episode_id, self.index, calls, self._ops_with_human(ops))
            self._human_ops.clear()
            self.summary.status, self.summary.ended_reason = "interrupted", "interrupted"
            self._finish()
        return self.summary

    def steps(self) -> Generator[StepEvent, None, EpisodeSummary]:
        """Play until the game ends or ``max_steps``; every step is stored before it is yielded."""
        try:
            while not self.ended:
                yield self.finish_step()
        except AgentError:
            pass  # recorded as failed by next_turn
        except (KeyboardInterrupt, GeneratorExit):
            self.close()
            raise
        return self.summary

    def _human_result(self, result: OpResult) -> OpResult:
        if result.ok:
            self.agent.memory_changed()
        self._human_ops.append(OpRecord.from_result(result, phase="HUMAN", turn=len(self._human_ops), source="human"))
        return result

    def _ops_with_human(self, ops: list[OpRecord]) -> list[OpRecord]:
        # in the order they ran (a person may act between two model turns), so replaying a step's
        # operations in id order rebuilds the folder
        if not self._human_ops:
            return ops
        return sorted([*self._human_ops, *ops], key=lambda o: o.created_at)

    def _commit(self, decision: StepChoice) -> StepEvent:
        """Play the decided action, store the step, advance."""
        index, observation = self.index, self.observation or ""
        g0 = time.perf_counter()
        result = self.game.step(decision.action)
        game_s = time.perf_counter() - g0
        achievements = self.game.achievements()
        unlocked = [a for a in achievements if a not in self._previous]
        self._previous.update(unlocked)
        progression = self.game.progression()
        self.agent.observe_outcome(index, decision, result.reward, unlocked)
        record = StepRecord(
            step=index,
            observation=observation,
            helper_notes="\n".join(decision.notes),
            frame=self._frame,
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
            ops=self._ops_with_human(decision.ops),
        )
        record.harness_s = max(0.0, time.perf_counter() - self._t0 - decision.model_s - game_s)
        self.store.record_step(self.episode_id, record)
        self._human_ops.clear()
        self._accumulate(record)
        summary = self.summary
        summary.progression, summary.achievements = progression, list(achievements)
        self.observation = result.observation
        self.index = index + 1
        if result.done:
            summary.ended_reason = self.game.ended_reason or "done"
        elif self.index >= self.max_steps:
            summary.ended_reason = "max steps"
        if summary.ended_reason is not None:
            summary.status = "finished"
            self._finish()
        return StepEvent(index, observation, decision, result.reward, result.done, progression, unlocked, record)

    def _fail(self, error: str) -> None:
        self.summary.status, self.summary.error = "failed", error
        self._finish()

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

    def _finish(self) -> None:
        s = self.summary
        s.wall_s = time.perf_counter() - (self._started or time.perf_counter())
        # the folder as it ended: where the next episode of a scope-"run" chain starts
        memory_end = self.memory.snapshot() if self.structure.context.scope == "run" else None
        self.store.finish_episode(
            self.episode_id, status=s.status, ended_reason=s.ended_reason, error=s.error, memory_end=memory_end
        )
