"""Critics: what reads a digest and proposes revised structures.

- ``heuristic``: a catalogue of structural mutations driven by the digest's numbers; no model.
- an engine spec (``llamacpp``, ``openai:URL#MODEL``, a profile ...): an LLM critic. Its answer is
  constrained by a JSON schema turned into a GBNF grammar when the engine honours grammars, and is
  either a patch (default: short, works with small models) or a whole structure.
- ``command:PROGRAM ARGS``: the prompt is piped to a program (e.g. a coding agent's non-interactive
  CLI) and the structure is read back from its stdout (YAML or JSON, whole or a patch).

Every proposal goes through the same validation as a person's edit; a refused one is sent back
with the errors, a bounded number of times.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml

from automem.engines.base import Engine, EngineError, Message
from automem.memory.structure import Structure, StructureError, structure_from_yaml
from automem.optimize.changes import structural_changes
from automem.optimize.heuristic import CRITIC_LABEL
from automem.optimize.patch import PatchError, apply_patch

#: proposals sent back with errors before one counts as invalid
MAX_ATTEMPTS = 3

PATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        # no maxLength: the converter unrolls it into hundreds of nested rules, which made constrained
        # sampling several times slower; max_tokens bounds the answer anyway
        "analysis": {"type": "string"},
        "changes": {
            "type": "array",
            "minItems": 1,
            "maxItems": 6,
            "items": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "value": {}},
                "required": ["path", "value"],
            },
        },
    },
    "required": ["analysis", "changes"],
}


def whole_schema() -> dict[str, Any]:
    """{analysis, structure} with ``structure`` held to Structure's own JSON schema (lineage fields
    left out: the code sets them)."""
    inner = Structure.model_json_schema()
    defs = inner.pop("$defs", {})  # refs point at the root: hoist the definitions there
    for lineage in ("parent", "author"):
        inner["properties"].pop(lineage, None)
    return {
        "type": "object",
        "$defs": defs,
        "properties": {"analysis": {"type": "string"}, "structure": inner},
        "required": ["analysis", "structure"],
    }


@dataclass
class Proposal:
    """One candidate: the structure (None when every attempt was refused) and how it came about."""

    structure: Structure | None
    analysis: str
    raw: str = ""
    attempts: int = 1
    errors: list[str] = field(default_factory=list)
    #: what the critic looked up before answering: {name, arguments, result}
    tool_calls: list[dict[str, str]] = field(default_factory=list)


class Critic(Protocol):
    name: str
    #: shown in the output: what kind of critic produced the proposals
    label: str

    def propose(self, parent: Structure, digest_text: str, k: int, exclude: set[str]) -> list[Proposal]: ...

    def close(self) -> None: ...


# -- checking a proposal ----------------------------------------------------------------------
def check_proposal(parent: Structure, data: Any, *, author: str) -> tuple[Structure, str]:
    """A critic's parsed answer -> (validated child of ``parent``, analysis); raises ValueError with
    every reason it is refused (the same validation as an edit in the structure editor)."""
    if not isinstance(data, dict):
        raise ValueError("the answer must be a JSON object")
    analysis = str(data.get("analysis", "")).strip()
    base = parent.model_dump(mode="json")
    if "changes" in data:
        changes = data["changes"]
        if not isinstance(changes, list) or not changes:
            raise ValueError("'changes' must be a non-empty list of {path, value}")
        merged = apply_patch(base, changes)
    elif "structure" in data or "name" in data:
        merged = data.get("structure", data)
        if not isinstance(merged, dict):
            raise ValueError("'structure' must be a mapping")
    else:
        raise ValueError("expected 'changes' (a patch) or 'structure' (a whole structure)")
    merged = {**merged, "parent": parent.id, "author": author}
    child = structure_from_yaml(yaml.safe_dump(merged, sort_keys=False), source="proposal")
    if child.id == parent.id:
        raise ValueError("the proposal is identical to the current structure")
    if not structural_changes(parent, child):
        raise ValueError(
            "only wording changed; change at least one of: files, caps, verbs, phases, helpers, context scope"
        )
    return child, analysis


def parse_answer(text: str) -> Any:
    """JSON, or YAML, possibly inside a ``` fence (command critics answer however they like)."""
    fenced = re.search(r"```(?:json|yaml|yml)?\s*\n(.*?)```", text, re.S)
    body = fenced.group(1) if fenced else text
    body = body.strip()
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        pass
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise ValueError(f"the answer is neither JSON nor YAML: {exc}") from None


# -- the prompt --------------------------------------------------------------------------------
CRITIC_SYSTEM = """You improve how an LLM agent uses its memory while it plays {game}.
The agent's memory is shaped by a structure: memory files with caps (pinned files are always in
the prompt, others are read on demand), the memory operations it may use, its phases (LOG may
write notes, PLAN reads and picks the game action) with turn budgets, helpers that add notes, and
how much recent history it sees. You read a digest of its episodes and propose ONE revision that
should raise its progression on the same seeds.

Answer with one JSON object and nothing else:
{{"analysis": "what the digest shows and why your change helps (2-3 sentences)",
  "changes": [{{"path": "...", "value": ...}}, ...]}}
Paths: dotted fields; list items by key in brackets. Examples:
  {{"path": "files[map.md].max_lines", "value": 40}}
  {{"path": "files[map.md].pinned", "value": false}}
  {{"path": "files[notes.md]", "value": null}}   (removes the file)
  {{"path": "files[+]", "value": {{"path": "goals.md", "purpose": "next goal", "max_lines": 10}}}}
  {{"path": "operations.enabled", "value": ["view", "append", "upsert"]}}
  {{"path": "phases[LOG].budget", "value": 1}}
  {{"path": "helpers[+]", "value": {{"name": "stuck_detector", "params": {{"window": 6}}}}}}
  {{"path": "helpers[auto_log].params.max_lines", "value": 20}}
  {{"path": "context.history_steps", "value": 8}}
At least one change must be structural (files, caps, verbs, phases, helpers, context); wording
alone is refused. Verbs: view, tail, search, count, append, write, create, str_replace, insert,
delete, rename, upsert.
Helpers are code that reads the game's state each step, adds notes to the prompt and may keep
memory files itself (a file a helper keeps should be declared, and pinned if the agent should see
it every step). Those for {game} (parameter: type = default):
{helpers}"""

WHOLE_INSTRUCTIONS = (
    """Answer with one JSON object: {"analysis": "...", "structure": {...the whole revised structure...}}."""
)


def helpers_text(game: str | None) -> str:
    """The helper catalogue for the critic: one line per helper that supports ``game``."""
    from automem.helpers import catalogue

    lines = []
    for info in catalogue(game):
        params = ", ".join(f"{p.name}: {p.type} = {p.default!r}" for p in info.params) or "no parameters"
        line = f"- {info.name} ({params}): {info.description}"
        if info.writes:
            line += f"; writes {info.writes}"
        lines.append(line)
    return "\n".join(lines)


def critic_messages(parent: Structure, digest_text: str, *, whole: bool, tried: list[str]) -> list[Message]:
    system = CRITIC_SYSTEM.format(game=parent.game or "a game", helpers=helpers_text(parent.game))
    if whole:
        system += "\n" + WHOLE_INSTRUCTIONS
    user = f"Current structure ({parent.name}, id {parent.id}):\n{parent.to_yaml()}\nDigest:\n{digest_text}"
    if tried:
        user += "\n\nAlready tried (propose something different):\n" + "\n".join(f"- {t}" for t in tried)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# -- LLM critic -------------------------------------------------------------------------------
TOOLS_HINT = """Before you answer you may look closer: step_range(episode_id, start, end) shows any steps
of an episode with their turns, memory_file_at(episode_id, path, step) a memory file as it was.
Call them when the digest is not enough; answer when you know what to change."""
#: characters of one tool result the critic sees
TOOL_RESULT_CHARS = 4000


class LLMCritic:
    label = "LLM critic"

    def __init__(
        self,
        engine: Engine,
        *,
        whole: bool = False,
        max_tokens: int | None = None,
        temperature: float = 0.7,
        tool_rounds: int = 3,
        attempts: int = MAX_ATTEMPTS,
    ):
        self.engine = engine
        self.attempts = attempts
        self.name = f"{engine.name}:{engine.model}"
        self.whole = whole
        self.max_tokens = max_tokens or (3000 if whole else 400)
        self.temperature = temperature
        #: look-ups allowed before the answer, when the engine takes tools and a store is set
        self.tool_rounds = tool_rounds
        self.store: Any = None  # set by the optimizer: the tools read episodes from it
        self._grammar: str | None = None

    def investigate(self, messages: list[Message], seed: int) -> tuple[list[Message], list[dict[str, str]]]:
        """Let the critic call the digest's tools; the exchanges are appended as plain messages (every
        chat template takes those), the answer that follows is constrained as usual."""
        from automem.engines.base import supports_tools
        from automem.optimize.digest import TOOLS, call_tool

        if self.store is None or self.tool_rounds <= 0 or not supports_tools(self.engine):
            return messages, []
        log: list[dict[str, str]] = []
        messages = [*messages[:-1], {"role": "user", "content": messages[-1]["content"] + "\n\n" + TOOLS_HINT}]
        for round_ in range(self.tool_rounds):
            try:
                reply = self.engine.complete_tools(  # type: ignore[attr-defined]
                    messages, TOOLS, max_tokens=120, temperature=self.temperature, seed=seed * 31 + round_
                )
            except EngineError:
                break  # looking things up is optional; the answer can still be asked for
            if not reply.tool_calls:
                break
            for call in reply.tool_calls[:2]:
                result = call_tool(self.store, call.name, call.arguments)[:TOOL_RESULT_CHARS]
                log.append({"name": call.name, "arguments": call.arguments, "result": result})
                messages = [
                    *messages,
                    {"role": "assistant", "content": f"(looking up) {call.name} {call.arguments}"},
                    {"role": "user", "content": f"{call.name} result:\n{result}"},
                ]
        if log:
            messages = [*messages, {"role": "user", "content": "Now answer with the JSON object."}]
        return messages, log

    def grammar(self) -> str | None:
        if not self.engine.supports_grammar:
            return None
        if self._grammar is None:
            # llama.cpp's converter, as an LLGuidance grammar: the in-process engine and `automem
            # serve` (and llama-server builds with LLGuidance) enforce it
            from xllamacpp import json_schema_to_grammar

            schema = PATCH_SCHEMA if not self.whole else whole_schema()
            self._grammar = json_schema_to_grammar(schema)
        return self._grammar

    def propose(self, parent: Structure, digest_text: str, k: int, exclude: set[str]) -> list[Proposal]:
        out: list[Proposal] = []
        tried: list[str] = []
        for index in range(k):
            proposal = self._one(parent, digest_text, tried, exclude, seed=index)
            out.append(proposal)
            if proposal.structure is not None:
                exclude = exclude | {proposal.structure.id}
                tried.append("; ".join(structural_changes(parent, proposal.structure)))
        return out

    def _one(self, parent: Structure, digest_text: str, tried: list[str], exclude: set[str], seed: int) -> Proposal:
        messages = critic_messages(parent, digest_text, whole=self.whole, tried=tried)
        messages, looked_up = self.investigate(messages, seed)
        errors: list[str] = []
        raw = ""
        for attempt in range(1, self.attempts + 1):
            try:
                completion = self.engine.complete(
                    messages, grammar=self.grammar(), max_tokens=self.max_tokens, temperature=self.temperature,
                    seed=seed * 101 + attempt,
                )  # fmt: skip
            except EngineError as exc:
                errors.append(f"attempt {attempt}: engine error: {exc}")
                return Proposal(None, "", raw, attempt, errors, looked_up)
            raw = completion.text
            try:
                child, analysis = check_proposal(parent, parse_answer(raw), author=f"critic:{self.name}")
                if child.id in exclude:
                    raise ValueError(f"structure {child.id} was already tried")
                return Proposal(child, analysis, raw, attempt, errors, looked_up)
            except (ValueError, PatchError, StructureError) as exc:
                reason = str(exc)
                errors.append(f"attempt {attempt}: {reason}")
                if completion.finish_reason == "length":
                    reason += f" (your answer was cut at {self.max_tokens} tokens: be shorter)"
                messages = [
                    *messages,
                    {"role": "assistant", "content": raw},
                    {"role": "user", "content": f"Refused: {reason}\nAnswer again with a corrected JSON object."},
                ]
        return Proposal(None, "", raw, self.attempts, errors, looked_up)

    def close(self) -> None:
        self.engine.close()


# -- command critic ---------------------------------------------------------------------------
class CommandCritic:
    """Pipes the prompt to a program and reads a structure (or a patch) from its stdout."""

    label = "command critic"

    def __init__(self, command: str, *, timeout_s: float = 900.0):
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("command critic needs a program: command:PROGRAM ARGS")
        self.name = f"command:{command}"
        self.timeout_s = timeout_s

    def propose(self, parent: Structure, digest_text: str, k: int, exclude: set[str]) -> list[Proposal]:
        out: list[Proposal] = []
        tried: list[str] = []
        for _ in range(k):
            proposal = self._one(parent, digest_text, tried, exclude)
            out.append(proposal)
            if proposal.structure is not None:
                exclude = exclude | {proposal.structure.id}
                tried.append("; ".join(structural_changes(parent, proposal.structure)))
        return out

    def _one(self, parent: Structure, digest_text: str, tried: list[str], exclude: set[str]) -> Proposal:
        messages = critic_messages(parent, digest_text, whole=False, tried=tried)
        prompt = "\n\n".join(m["content"] for m in messages)
        errors: list[str] = []
        raw = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                done = subprocess.run(
                    self.argv, input=prompt, capture_output=True, text=True, timeout=self.timeout_s, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                errors.append(f"attempt {attempt}: {exc}")
                return Proposal(None, "", raw, attempt, errors)
            raw = done.stdout
            if done.returncode != 0:
                errors.append(f"attempt {attempt}: exit code {done.returncode}: {done.stderr.strip()[-300:]}")
                return Proposal(None, "", raw, attempt, errors)
            try:
                child, analysis = check_proposal(parent, parse_answer(raw), author=f"critic:{self.name}")
                if child.id in exclude:
                    raise ValueError(f"structure {child.id} was already tried")
                return Proposal(child, analysis, raw, attempt, errors)
            except (ValueError, PatchError, StructureError) as exc:
                errors.append(f"attempt {attempt}: {exc}")
                prompt += f"\n\nYour previous answer:\n{raw}\nRefused: {exc}\nAnswer again, corrected."
        return Proposal(None, "", raw, MAX_ATTEMPTS, errors)

    def close(self) -> None:
        pass


# -- heuristic critic -------------------------------------------------------------------------
class HeuristicCritic:
    name = "heuristic"
    label = CRITIC_LABEL

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.signals: Any = None  # set by the loop from the digest before propose()

    def propose(self, parent: Structure, digest_text: str, k: int, exclude: set[str]) -> list[Proposal]:
        from automem.optimize.heuristic import Signals, propose

        signals = self.signals if self.signals is not None else Signals()
        mutations = propose(parent, signals, k, seed=self.seed, exclude=set(exclude))
        return [Proposal(m.structure, f"[{m.name}] {m.reason}", raw=m.name) for m in mutations]

    def close(self) -> None:
        pass


def make_critic(spec: str, **engine_options: Any) -> Critic:
    """``heuristic``, ``command:PROGRAM ARGS``, or an engine spec / profile (optionally ``whole:``
    before it for whole-structure answers)."""
    spec = spec.strip()
    if spec == "heuristic":
        return HeuristicCritic()
    if spec.startswith("command:"):
        return CommandCritic(spec.removeprefix("command:"))
    whole = spec.startswith("whole:")
    from automem.engines import build_engine

    return LLMCritic(build_engine(spec.removeprefix("whole:"), **engine_options), whole=whole)
