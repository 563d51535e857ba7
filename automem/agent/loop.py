"""The inner loop of one agent: LOG (may write) then PLAN (read-only, ends with one action), or a
single ACT phase. One step is a generator of turns so front ends can advance it turn by turn.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TypeVar

from automem.agent.prompt import (
    observation_changes,
    phases_text,
    pinned_block,
    step_context,
    system_prompt,
    with_instructions,
)
from automem.engines.base import Completion, Engine, EngineError, Message
from automem.errors import AutomemError
from automem.games.base import Game
from automem.helpers import Helper, HelperContext, HelperMemory, make_helpers
from automem.memory.folder import MemoryFolder
from automem.memory.grammar import ForcedStart, build_grammar, forced_start
from automem.memory.ops import READ_VERBS, Operation, OpResult, Verb
from automem.memory.structure import PhaseSpec, Structure
from automem.memory.syntax import Act, Done, ParseError, format_command, parse_command
from automem.records import CallRecord, OpRecord

T = TypeVar("T")
R = TypeVar("R")
#: actions that do nothing harmful, tried in order when a structure's fallback does not fit the game
_SAFE_FALLBACKS = ("noop", "wait", "search")
#: consecutive failed engine calls after which the episode is ended as failed
MAX_ENGINE_ERRORS = 3
#: tokens a step is assumed to add to a transcript until one has been measured
MIN_STEP_GROWTH = 128


class AgentError(AutomemError):
    """The engine keeps failing; the episode ends (everything recorded so far is kept)."""


@dataclass
class TurnEvent:
    """One model turn: what was asked, what came back, and what it did."""

    phase: str
    turn: int
    call: CallRecord | None
    command: Act | Done | Operation | ParseError | None
    result: OpResult | None
    feedback: str


@dataclass
class StepChoice:
    """One step's outcome: the action to commit, who chose it, and the model calls and memory
    operations that led there."""

    action: str
    source: str  # model | fallback
    calls: list[CallRecord] = field(default_factory=list)
    ops: list[OpRecord] = field(default_factory=list)
    events: list[TurnEvent] = field(default_factory=list)
    invalid: int = 0
    model_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def resolve_fallback(structure: Structure, action_names: list[str]) -> str:
    if structure.fallback_action in action_names:
        return structure.fallback_action
    return next((a for a in _SAFE_FALLBACKS if a in action_names), action_names[0])


def drain(gen: Generator[T, None, R], on_item: Callable[[T], None] | None = None) -> R:
    """Run a generator to its end, handing each item to ``on_item``; returns its return value."""
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_item is not None:
            on_item(item)


def _acted(event: TurnEvent, decision: StepChoice) -> bool:
    """Record a valid ACT as the step's action; True when the step is decided."""
    if isinstance(event.command, Act) and event.call is not None and event.call.valid:
        decision.action, decision.source = event.command.action, "model"
        return True
    return False


class Agent:
    def __init__(
        self,
        structure: Structure,
        game: Game,
        engine: Engine,
        memory: MemoryFolder,
        *,
        temperature: float = 0.7,
        seed: int = 0,
        memory_engine: Engine | None = None,
    ) -> None:
        self.structure = structure
        self.game = game
        self.engine = engine
        # two-model mode: the memory engine does LOG and PLAN's look-ups, ``engine`` commits the action
        self.memory_engine = memory_engine
        self.memory = memory
        self.temperature = temperature
        self.seed = seed
        self.action_names = game.action_names()
        self._action_set = set(self.action_names)
        self._action_lookup = {a.lower(): a for a in self.action_names}
        self.fallback = resolve_fallback(structure, self.action_names)
        self.system = system_prompt(
            structure,
            game=game.name,
            task=game.task,
            rules=game.rules(),
            actions=game.actions,
            fallback=self.fallback,
        )
        if self._reminders_held():
            # the full texts are cached once with the system message; each step says the reminders
            self.system += "\n\n" + phases_text(structure.phases)
        self.helpers: list[Helper] = make_helpers([(h.name, h.params) for h in structure.helpers], game.name)
        self._helper_memory = HelperMemory(memory)
        #: what helpers wrote while building this step's notes, until the step takes them
        self._helper_ops: list[OpRecord] = []
        self.history: deque[str] = deque(maxlen=max(structure.context.history_steps, 1))
        self._last_action: str | None = None
        self._last_reward = 0.0
        self._steps_seen = 0
        self._engine_errors = 0
        self._grammars: dict[tuple[object, ...], str] = {}
        self._known_paths: list[str] | None = None
        self._lines: dict[str, int] | None = None
        #: the step being decided (front ends that take over mid-step keep what it already did)
        self.current: StepChoice | None = None
        # the transcript layout: the conversation so far, the pinned files as it last showed them,
        # its size in tokens now and after its first step
        self._transcript: list[Message] = []
        self._pinned_shown: dict[str, str | None] = {}
        self._transcript_tokens = self._transcript_base = 0
        self._last_prompt_tokens = 0
        self._appended = False
        #: what each of the last few appended steps added to the transcript, in tokens
        self._growths: deque[int] = deque(maxlen=3)
        self._step_messages: tuple[int, list[Message]] | None = None
        # past_turns "drop": the steps' first messages so far, this step's included (no instructions);
        # the size of this step's first prompt; whether an engine call of this step failed
        self._step_context = ""
        self._step_first_tokens = 0
        self._step_failed = False
        # the observation's parts as the transcript last holds them, and this step's
        self._observation_shown: list[str] = []
        self._step_observation: list[str] = []
        #: how often the transcript was started again because it grew too long
        self.rebuilds = 0

    # -- grammar --------------------------------------------------------------------------
    def _paths(self) -> list[str]:
        # listing() reads the folder; cache it until an operation may have added or removed a file
        if self._known_paths is None:
            known = {f.path for f in self.structure.files}
            known.update(p for p, _, _ in self.memory.listing())
            self._known_paths = sorted(known)
        return self._known_paths

    def _line_counts(self) -> dict[str, int]:
        """Each file's lines (a file not written yet has none), for the lines an insert may name;
        cached until a write (a person's or a helper's too)."""
        if self._lines is None:
            self._lines = {p: 0 for p in self._paths()}
            self._lines.update((p, n) for p, n, _ in self.memory.listing())
        return self._lines

    def _grammar(
        self, engine: Engine, verbs: frozenset[Verb], allow_done: bool, allow_act: bool, max_tokens: int
    ) -> tuple[str, ForcedStart | None] | None:
        """The turn's grammar and what it forces at the start, or None when the engine takes none."""
        if not engine.supports_grammar:
            return None
        paths = self._paths()
        # text longer than the token budget would be cut mid-command; ~2 chars per token is safe
        text_cap = max(8, min(self.structure.operations.max_text_chars, max_tokens * 2))
        # except before str_replace's '=>': cut there, the command cannot be parsed (digits and
        # punctuation run one character per token). A token holds at least one character, so the
        # old text gets what the budget leaves after the longest command head at that rate
        head = len("str_replace ") + max((len(p) for p in paths), default=0) + len(": ") + len(" =>")
        old_cap = max(8, min(text_cap, max_tokens - head))
        lines = self._line_counts() if Verb.INSERT in verbs else {}
        key = (verbs, allow_done, allow_act, tuple(paths), text_cap, old_cap, tuple(sorted(lines.items())))
        found = self._grammars.get(key)
        if found is None:
            settings = {
                "verbs": set(verbs),
                "paths": paths,
                "actions": self.action_names,
                "allow_done": allow_done,
                "allow_act": allow_act,
                "allow_new_paths": self.structure.operations.allow_new_files,
            }
            grammar = build_grammar(**settings, max_text_chars=text_cap, max_old_chars=old_cap, insert_lines=lines)
            found = (grammar, forced_start(**settings))
            self._grammars[key] = found
        return found

    def _turn_rules(self, phase: PhaseSpec, turn: int) -> tuple[frozenset[Verb], bool, bool]:
        """(verbs, DONE allowed, ACT allowed) for this turn of the phase."""
        last = turn == phase.budget - 1
        verbs = frozenset(self.structure.verbs())
        if phase.kind == "LOG":
            return verbs, True, False
        if last:
            return frozenset(), False, True
        if self.memory_engine is not None:
            # the memory engine looks things up and says DONE; the last turn is the agent engine's ACT
            return (verbs if phase.kind == "ACT" else verbs & frozenset(READ_VERBS)), True, False
        if phase.kind == "PLAN":
            return verbs & frozenset(READ_VERBS), False, True
        return verbs, False, True  # ACT: any verb, then the action

    # -- one step ---------------------------------------------------------------------------
    def notes(self, observation: str, step: int | None = None) -> list[str]:
        """The helpers' notes for this step; their memory writes wait in ``take_helper_ops``."""
        out: list[str] = []
        if not self.helpers:
            return out
        ctx = HelperContext(
            game=self.game,
            observation=observation,
            step=self._steps_seen if step is None else step,
            last_action=self._last_action,
            last_reward=self._last_reward,
            memory=self._helper_memory,
        )
        for helper in self.helpers:
            try:
                out.extend(helper.step(ctx))
            except Exception as exc:  # a helper's bug (a plugin's too) is a note, not the episode's end
                out.append(f"(helper {helper.name} failed: {type(exc).__name__}: {exc})")
        for index, (name, result) in enumerate(self._helper_memory.take()):
            # phase HELPER, turn = order within the step: the replay rebuilds the folder in id order
            rec = OpRecord.from_result(result, phase="HELPER", turn=index, source="helper")
            rec.args = {**rec.args, "helper": name}
            self._helper_ops.append(rec)
        if self._helper_ops:
            self._known_paths = self._lines = None  # a helper may have created or grown a file
        return out

    def take_helper_ops(self) -> list[OpRecord]:
        out, self._helper_ops = self._helper_ops, []
        return out

    def turns(self, observation: str, step: int) -> Generator[TurnEvent, None, StepChoice]:
        """Run one step's phases, yielding each turn; returns the StepChoice (the action and what led to it)."""
        decision = StepChoice(action=self.fallback, source="fallback")
        self.current = decision
        decision.notes = self.notes(observation, step)
        decision.ops.extend(self.take_helper_ops())
        messages, pending_user = self._step_start(observation, decision.notes)
        self._step_messages = (step, messages)
        for index, phase in enumerate(self.structure.phases):
            if index > 0:
                pending_user = (pending_user + "\n\n" if pending_user else "") + self._instructions(phase)
            for turn in range(phase.budget):
                verbs, allow_done, allow_act = self._turn_rules(phase, turn)
                messages.append({"role": "user", "content": pending_user})
                event = self._one_turn(messages, phase, turn, step, verbs, allow_done, allow_act, decision)
                decision.events.append(event)
                yield event
                if _acted(event, decision):
                    return decision
                pending_user = event.feedback
                if isinstance(event.command, Done) and event.call is not None and event.call.valid:
                    pending_user = ""
                    if phase.kind == "LOG":
                        break
                    # two-model PLAN/ACT: the look-ups are done, hand the action turn to the agent engine
                    messages.append({"role": "user", "content": "Now choose the game action: ACT <action>."})
                    event = self._one_turn(messages, phase, phase.budget - 1, step, frozenset(), False, True, decision)
                    decision.events.append(event)
                    yield event
                    _acted(event, decision)
                    return decision
                if turn == phase.budget - 1 and phase.kind == "LOG":
                    # the hint asked for more notes, but the phase is over
                    pending_user = event.result.message if event.result else ""
        return decision

    def _step_start(self, observation: str, notes: list[str]) -> tuple[list[Message], str]:
        """The conversation this step extends and its first user message (see agent.prompt)."""
        context = self.structure.context
        self._step_failed = False
        pinned_now = {f.path: self.memory.read_text(f.path) for f in self.structure.pinned_files()}
        self._appended = (
            bool(self._transcript) and context.layout == "transcript" and context.history_steps > 0
        ) and not self._too_long()
        instructions = self._instructions(self.structure.phases[0])
        self._step_observation = self.game.observation_parts(observation)
        if self._appended:
            changed = {path for path, text in pinned_now.items() if self._pinned_shown.get(path) != text}
            self._pinned_shown = pinned_now
            if context.observation == "changes" and self._observation_shown:
                observation = observation_changes(self._observation_shown, self._step_observation)
            added = step_context(
                pinned=pinned_block(self.structure, pinned_now, only=changed) if changed else "",
                pinned_changed=True,
                history=list(self.history)[-1:],
                notes=notes,
                observation=observation,
            )
            if context.past_turns == "drop":
                # the earlier steps' first messages and this one's are one message: the model's
                # own earlier answers are not shown (the outcome lines say what the steps did)
                self._step_context = self._transcript[-1]["content"] + "\n\n" + added
                return [self._transcript[0]], with_instructions(self._step_context, instructions)
            return list(self._transcript), with_instructions(added, instructions)
        if self._transcript:
            self.rebuilds += 1
        self._pinned_shown = pinned_now
        self._transcript_tokens = self._transcript_base = 0
        self._step_context = step_context(
            pinned=pinned_block(self.structure, pinned_now),
            history=list(self.history) if context.history_steps else [],
            notes=notes,
            observation=observation,
        )
        return [{"role": "system", "content": self.system}], with_instructions(self._step_context, instructions)

    def _reminders_held(self) -> bool:
        """Whether the system message holds the phases' full instructions, so that every step says
        their reminders: a transcript that drops past turns would otherwise never show them again."""
        context = self.structure.context
        return (
            context.layout == "transcript"
            and context.past_turns == "drop"
            and any(p.reminder for p in self.structure.phases)
        )

    def _instructions(self, phase: PhaseSpec) -> str:
        """A phase's text for this step: its reminder in a step appended to a transcript that keeps
        the earlier steps' turns, or in every step when the system message holds the full text."""
        if phase.reminder and (
            self._reminders_held() or (self._appended and self.structure.context.past_turns == "keep")
        ):
            return phase.reminder.strip()
        return phase.instructions.strip()

    def _too_long(self) -> bool:
        """Whether appending another step may take the transcript past its growth budget (or the
        engine's context, less room for two answers): its size now plus the most any of the last
        few steps added."""
        growth = max(max(self._growths, default=0), MIN_STEP_GROWTH)
        if self._transcript_tokens - self._transcript_base + growth > self.structure.context.transcript_growth:
            return True
        room = 2 * max(p.max_tokens for p in self.structure.phases)
        for engine in (self.engine, self.memory_engine):
            n_ctx = getattr(engine, "n_ctx", None)
            if isinstance(n_ctx, int) and n_ctx > 0 and self._transcript_tokens + growth > n_ctx - room:
                return True
        return False

    def _commit_transcript(self, step: int) -> None:
        """Keep this step's turns as the conversation the next step extends."""
        if self._step_messages is None or self._step_messages[0] != step:
            return  # a person played the step before any model turn: the outcome line tells it
        messages = self._step_messages[1]
        self._step_messages = None
        if self._step_failed:
            return  # an engine error (a context overflow among the causes): the next step starts afresh
        while messages and messages[-1]["role"] != "assistant":
            messages.pop()  # a take-over left a question unanswered
        if len(messages) <= 1:
            return
        keep = self.structure.context.past_turns == "keep"
        # the transcript's size: all of this step's conversation, or its first prompt (the step's
        # first message, less the instructions, is what a transcript that drops turns keeps)
        size = self._last_prompt_tokens if keep else self._step_first_tokens
        if self._transcript_tokens:
            self._growths.append(max(0, size - self._transcript_tokens))
        else:  # the conversation's first step: its size is where the growth budget starts
            self._transcript_base = size
        self._transcript_tokens = size
        self._transcript = messages if keep else [messages[0], {"role": "user", "content": self._step_context}]
        self._observation_shown = self._step_observation

    def decide(self, observation: str, step: int) -> StepChoice:
        return drain(self.turns(observation, step))

    def _one_turn(
        self,
        messages: list[Message],
        phase: PhaseSpec,
        turn: int,
        step: int,
        verbs: frozenset[Verb],
        allow_done: bool,
        allow_act: bool,
        decision: StepChoice,
    ) -> TurnEvent:
        engine = self.engine if allow_act or self.memory_engine is None else self.memory_engine
        constraint = self._grammar(engine, verbs, allow_done, allow_act, phase.max_tokens)
        grammar, forced = constraint if constraint else (None, None)
        sample_seed = (self.seed * 1_000_003 + step * 101 + len(decision.calls)) % 2**31
        try:
            completion = self._complete(engine, messages, grammar, forced, phase.max_tokens, sample_seed)
        except EngineError as exc:
            self._engine_errors += 1
            messages.pop()
            self._transcript = []  # a context overflow among the causes: the next step starts afresh
            self._step_failed = True
            decision.invalid += 1
            if self._engine_errors >= MAX_ENGINE_ERRORS:
                raise AgentError(f"engine failed {self._engine_errors} times in a row: {exc}") from exc
            return TurnEvent(phase.kind, turn, None, None, None, f"(engine error: {exc})")
        self._engine_errors = 0
        decision.model_s += completion.latency_s
        if not decision.calls:
            self._step_first_tokens = completion.input_tokens or sum(len(m["content"]) for m in messages) // 3
        # prompt + answer: what the next call of this conversation starts from; an engine that
        # reports no token counts is measured at 3 characters per token (English runs ~4)
        self._last_prompt_tokens = (
            completion.input_tokens + completion.output_tokens
            if completion.input_tokens
            else (sum(len(m["content"]) for m in messages) + len(completion.text)) // 3
        )
        text = completion.text.strip()
        command, feedback, result, valid = self._apply(parse_command(text), phase, verbs, allow_done, allow_act)
        call = CallRecord(
            phase=phase.kind,
            turn=turn,
            engine=engine.name,
            model=engine.model,
            prompt=list(messages),
            grammar=grammar,
            response=completion.text,
            parsed=command.message if isinstance(command, ParseError) else format_command(command),
            valid=valid,
            input_tokens=completion.input_tokens,
            cached_tokens=completion.cached_tokens,
            output_tokens=completion.output_tokens,
            latency_s=completion.latency_s,
            finish_reason=completion.finish_reason,
        )
        decision.calls.append(call)
        if not valid:
            decision.invalid += 1
        if result is not None:
            decision.ops.append(
                OpRecord.from_result(
                    result, phase=phase.kind, turn=turn, source="model", call_index=len(decision.calls) - 1
                )  # fmt: skip
            )
        messages.append({"role": "assistant", "content": text})
        return TurnEvent(phase.kind, turn, call, command, result, feedback)

    def _complete(
        self,
        engine: Engine,
        messages: list[Message],
        grammar: str | None,
        forced: ForcedStart | None,
        max_tokens: int,
        seed: int,
    ) -> Completion:
        """One call; what the grammar forces is not sampled. A single possible command needs no
        call; an engine with ``complete_line`` (llama.cpp) is handed the forced prefix to continue
        and stops at the command's end instead of sampling the end-of-text token after it."""
        if forced is not None and forced.whole is not None:
            return Completion(forced.whole, 0, 0, 0, 0.0, "forced")
        complete_line = getattr(engine, "complete_line", None)
        if grammar is not None and complete_line is not None:
            return complete_line(
                list(messages),
                prefix=forced.prefix if forced else "",
                grammar=forced.rest if forced else grammar,
                max_tokens=max_tokens,
                temperature=self.temperature,
                seed=seed,
            )
        return engine.complete(
            list(messages), grammar=grammar, max_tokens=max_tokens, temperature=self.temperature, seed=seed
        )

    def _apply(
        self,
        command: Act | Done | Operation | ParseError,
        phase: PhaseSpec,
        verbs: frozenset[Verb],
        allow_done: bool,
        allow_act: bool,
    ) -> tuple[Act | Done | Operation | ParseError, str, OpResult | None, bool]:
        """The command as played, feedback for the model, the memory result, and whether it was valid."""
        hint = self._next_hint(phase, allow_act)
        if isinstance(command, ParseError):
            return command, f"invalid: {command.message}. {hint}", None, False
        if isinstance(command, Done):
            if not allow_done:
                return command, f"invalid: DONE is only for the LOG phase. {hint}", None, False
            return command, "", None, True
        if isinstance(command, Act):
            if not allow_act:
                feedback = f"invalid: no game action in the {phase.kind} phase; write notes or DONE. {hint}"
                return command, feedback, None, False
            action = self.match_action(command.action)
            if action is None:
                return command, f"invalid: unknown action {command.action!r}. {hint}", None, False
            # e.g. "Move_Left." from an unconstrained model plays move_left
            return Act(action), "", None, True
        if command.verb not in verbs:
            allowed = ", ".join(sorted(v.value for v in verbs)) or "none"
            feedback = f"invalid: {command.verb.value} is not allowed now (allowed: {allowed}). {hint}"
            return command, feedback, None, False
        result = self.memory.execute(command)
        if result.ok and (command.verb in (Verb.RENAME, Verb.DELETE) or command.path not in (self._known_paths or ())):
            self._known_paths = None
        if result.ok and command.verb not in READ_VERBS:
            self._lines = None
        return command, f"{result.message}\n{hint}", result, True

    def memory_changed(self) -> None:
        """A person changed the folder: the grammar's paths and line counts must be rebuilt."""
        self._known_paths = self._lines = None

    def match_action(self, text: str) -> str | None:
        """The game action ``text`` names (exact, or forgiving case and punctuation), if any."""
        if text in self._action_set:
            return text
        cleaned = text.strip().strip(".,;!\"'`").strip().lower()
        return self._action_lookup.get(cleaned)

    def _next_hint(self, phase: PhaseSpec, allow_act: bool) -> str:
        if phase.kind == "LOG":
            return "Next memory command, or DONE."
        if self.memory_engine is not None and not allow_act:
            return "Next: read memory, or DONE when you know enough."
        return "Next: read memory, or ACT <action>." if allow_act else "Next command."

    # -- after the game step --------------------------------------------------------------
    def observe_outcome(self, step: int, decision: StepChoice, reward: float, unlocked: list[str]) -> None:
        """Remember the step in the rolling history shown in later prompts."""
        line = f"step {step}: {decision.action}"
        if decision.source != "model":
            line += f" ({decision.source})"
        if reward:
            line += f", reward {reward:+g}"
        if unlocked:
            line += f", unlocked {', '.join(unlocked)}"
        # the model's and a person's writes; helpers' own bookkeeping is not news to the model
        writes = [o for o in decision.ops if o.ok and o.verb not in READ_VERBS and o.source != "helper"]
        if writes:
            line += "; noted " + ", ".join(dict.fromkeys(f"{o.verb} {o.path}" for o in writes))
        self.history.append(line)
        self._commit_transcript(step)
        self._steps_seen = step + 1
        self._last_action = decision.action
        self._last_reward = reward
