"""The tools a critic engine with tool calls can use to look past the digest.

:func:`step_range` shows any steps of an episode with their turns, :func:`memory_file_at` a memory
file as it was after a step. Each tool's arguments are a pydantic model: it checks a call in
:func:`call_tool` and gives the JSON schema offered to the model in :data:`TOOLS`, so what is
offered and what is accepted cannot drift apart. Every problem comes back to the critic as one
``error: ...`` line, never as an exception: a bad call costs the critic a round, not the loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
)

from automem.memory.ops import split_lines
from automem.optimize.digest.readers import Step
from automem.optimize.digest.render import first_line, plural, step_line, turn_lines
from automem.store.db import Store


# -- the arguments --------------------------------------------------------------------------------
def _unquote(value: Any) -> Any:
    """Models often quote numbers: "5" is 5; anything else is left to the strict check."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return value


def _clamp_chars(value: int) -> int:
    # a size outside the offered bounds is brought inside them, not refused: the call is still useful
    return min(max(value, 200), 20000)


#: strict, so True or 5.0 is no step number (pydantic's lax mode would take them as 1 and 5)
ToolInt = Annotated[int, Strict(), BeforeValidator(_unquote)]
_EPISODE = "episode id as shown in the digest (ep N)"


def _step(description: str) -> Any:
    # "minimum" is offered to the model but not enforced by the model class: the tool answers a
    # step out of range with the episode's real range, which tells the critic more
    return Field(description=description, json_schema_extra={"minimum": 0})


class _ToolArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StepRangeArgs(_ToolArgs):
    episode_id: ToolInt = Field(description=_EPISODE)
    start: ToolInt = _step("first step (0-based)")
    end: ToolInt = _step("last step, inclusive")
    max_chars: Annotated[ToolInt, AfterValidator(_clamp_chars)] = Field(
        4000,
        description="cut the answer at this many characters (default 4000)",
        json_schema_extra={"minimum": 200, "maximum": 20000},
    )


class MemoryFileAtArgs(_ToolArgs):
    episode_id: ToolInt = Field(description=_EPISODE)
    path: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        description="file path inside the memory folder, e.g. map.md"
    )
    step: ToolInt = _step("step (0-based)")


# -- the tools ------------------------------------------------------------------------------------
def _range_error(store: Store, episode_id: int, steps: Sequence[int]) -> str | None:
    n = store.step_count(episode_id)
    if n is None:
        return f"error: no episode {episode_id}"
    if n == 0:
        return f"error: episode {episode_id} has no recorded steps"
    bad = [s for s in steps if not 0 <= s < n]
    if bad:
        return f"error: step {bad[0]} is out of range; episode {episode_id} has steps 0-{n - 1}"
    return None


def step_range(store: Store, episode_id: int, start: int, end: int, max_chars: int = 4000) -> str:
    """Steps ``start``..``end`` (inclusive) of an episode as text, cut at ``max_chars``."""
    error = _range_error(store, episode_id, [start, end])
    if error:
        return error
    if start > end:
        return f"error: start {start} is after end {end}"
    rows = store.steps_between(episode_id, start, end)
    before = store.progression_at(episode_id, start - 1)
    previous = before if before is not None else 0.0
    turns = turn_lines(store, episode_id, start, end)
    out: list[str] = []
    used = 0
    for step, action, source, reward, progression, invalid, observation, notes in rows:
        s = Step(step, action or "", source or "", float(reward or 0.0), float(progression or 0.0), (),
                 int(invalid or 0), 0, 0, False)  # fmt: skip
        obs = [line.strip() for line in (observation or "").split("\n") if line.strip()][:6]
        block = [step_line(s, previous), "  observation: " + " | ".join(obs)]
        block += [f"  note: {first_line(n)}" for n in (notes or "").split("\n") if n.strip()]
        block += turns.get(step, [])
        text = "\n".join(block)
        if used + len(text) + 1 > max_chars:
            rest = f"(cut at {max_chars} chars: steps {step}-{end} not shown; ask for a smaller range)"
            if not out:  # even one step is too long: show its beginning
                out.append(text[: max(0, max_chars - len(rest) - 5)] + " ...")
            out.append(rest)
            break
        out.append(text)
        used += len(text) + 1
        previous = s.progression
    return "\n".join(out)


def memory_file_at(store: Store, episode_id: int, path: str, step: int) -> str:
    """One memory file as it was after ``step``'s operations, rebuilt by the replay."""
    from automem.runs.replay import EpisodeReplay

    error = _range_error(store, episode_id, [step])
    if error:
        return error
    files = EpisodeReplay(store, episode_id).memory(step)
    if path not in files:
        return f"error: no file {path!r} after step {step} of episode {episode_id}; files: {', '.join(files) or 'none'}"
    content = files[path]
    size = f"{plural(len(split_lines(content)), 'line')}, {len(content)} chars"
    head = f"{path} after step {step} of episode {episode_id} ({size}):"
    return f"{head}\n{content}" if content else f"{head}\n(empty)"


@dataclass(frozen=True)
class _Tool:
    args: type[_ToolArgs]
    description: str
    run: Callable[[Store, Any], str]  # (store, validated arguments) -> the answer


_TOOLS: dict[str, _Tool] = {
    "step_range": _Tool(
        StepRangeArgs,
        "Show steps start..end (inclusive) of one episode: each step's action, reward and progression, the "
        "first lines of its observation, helper notes, the model's LOG/PLAN turns and the memory operations "
        "with their results.",
        lambda store, a: step_range(store, a.episode_id, a.start, a.end, max_chars=a.max_chars),
    ),
    "memory_file_at": _Tool(
        MemoryFileAtArgs,
        "The content of one memory file of an episode as it was after a step's memory operations "
        "(step 0 = after the first step).",
        lambda store, a: memory_file_at(store, a.episode_id, a.path, a.step),
    ),
}


def _parameters(args: type[_ToolArgs]) -> dict[str, Any]:
    """The model's JSON schema without pydantic's titles: the model reads names and descriptions."""
    schema = args.model_json_schema()
    schema.pop("title", None)
    for spec in schema["properties"].values():
        spec.pop("title", None)
    return schema


#: the tools as an OpenAI-style ``tools`` list, their parameters from the argument models
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {"name": name, "description": t.description, "parameters": _parameters(t.args)}}
    for name, t in _TOOLS.items()
]


# -- one call -------------------------------------------------------------------------------------
def _bad_arguments(name: str, args: type[_ToolArgs], exc: ValidationError) -> str:
    """One line for the critic: missing or unknown names first (they say the call was misread),
    else the first argument of the wrong kind, numbers before strings."""
    errors = exc.errors()
    missing = [str(e["loc"][0]) for e in errors if e["type"] == "missing"]
    unknown = [str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden"]
    if missing or unknown:
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(unknown)}"] if unknown else []
        )
        return f"error: bad arguments for {name} ({'; '.join(problems)}); expected {', '.join(args.model_fields)}"
    fields = args.model_fields

    def kind(error: Any) -> Any:
        field = str(error["loc"][0]) if error["loc"] else ""
        return fields[field].annotation if field in fields else None

    # numbers before the path, as the critic was told before the models checked the calls
    first = min(errors, key=lambda e: kind(e) is not int)
    field = str(first["loc"][0]) if first["loc"] else ""
    if kind(first) is int:
        return f"error: {field} must be an integer"
    if kind(first) is str:
        return f"error: {field} must be a non-empty string"
    return f"error: bad arguments for {name}: {first['msg']}"


def call_tool(store: Store, name: str, arguments: dict[str, Any] | str) -> str:
    """Run one tool call of the critic; every problem comes back as an ``error: ...`` string."""
    tool = _TOOLS.get(name)
    if tool is None:
        return f"error: unknown tool {name!r}; tools: {', '.join(_TOOLS)}"
    if isinstance(arguments, str):  # the raw JSON string an API returns
        try:
            arguments = json.loads(arguments or "{}")
        except ValueError as exc:
            return f"error: arguments are not valid JSON: {exc}"
    if not isinstance(arguments, dict):
        return "error: arguments must be a JSON object"
    try:
        args = tool.args.model_validate(arguments)
    except ValidationError as exc:
        return _bad_arguments(name, tool.args, exc)
    try:
        return tool.run(store, args)
    except Exception as exc:  # a tool answer, never a crash of the critic loop
        return f"error: {name} failed: {type(exc).__name__}: {exc}"
