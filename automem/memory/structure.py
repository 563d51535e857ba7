"""The Structure: the memory schema as data.

Everything loop 1 may change and a person may edit lives here (prompts, files, enabled verbs,
phases, helpers, context). A Structure is validated by pydantic, stored as YAML, identified by a
content hash and never edited in place: an edit is a new version whose ``parent`` is the old id.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from automem.errors import AutomemError
from automem.memory.folder import FileLimits, MemoryLimits
from automem.memory.ops import READ_VERBS, Verb

#: placeholders a prompt may use; filled from the game and the structure at prompt time
TEMPLATE_FIELDS = frozenset({"game", "task", "rules", "actions", "files", "verbs", "fallback"})
_PLACEHOLDER = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


class StructureError(AutomemError, ValueError):
    """An invalid structure; the message names the field and, from YAML, the line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_placeholders(text: str | None) -> str | None:
    if text is None:
        return text
    unknown = sorted({m for m in _PLACEHOLDER.findall(text)} - TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(
            f"unknown placeholder(s) {', '.join('$' + u for u in unknown)}; "
            f"allowed: {', '.join('$' + f for f in sorted(TEMPLATE_FIELDS))}"
        )
    return text


class FileSpec(_Strict):
    path: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*){0,2}$")
    purpose: str
    format: str = "free text"
    pinned: bool = False  # pinned files are always in the prompt; others are read on demand
    max_lines: int = Field(default=60, ge=1, le=2000)
    max_chars: int = Field(default=3000, ge=16, le=100_000)
    overflow: Literal["refuse", "drop_oldest"] = "refuse"
    read_only: bool = False
    seed: str = ""

    @model_validator(mode="after")
    def _seed_fits(self) -> FileSpec:
        if len(self.seed) > self.max_chars or self.seed.count("\n") + 1 > self.max_lines:
            raise ValueError("seed content is larger than the file's caps")
        return self


class OperationsSpec(_Strict):
    enabled: list[Verb] = Field(default_factory=list)
    allow_new_files: bool = True
    max_files: int = Field(default=16, ge=0, le=256)
    max_file_chars: int = Field(default=4000, ge=16, le=100_000)
    max_file_lines: int = Field(default=200, ge=1, le=5000)
    max_read_lines: int = Field(default=30, ge=1, le=500)
    max_search_results: int = Field(default=8, ge=1, le=100)
    max_text_chars: int = Field(default=160, ge=8, le=4000)


class PhaseSpec(_Strict):
    kind: Literal["LOG", "PLAN", "ACT"]
    budget: int = Field(default=2, ge=1, le=16, description="model turns before the phase is closed")
    max_tokens: int = Field(default=64, ge=4, le=4096, description="output cap of one turn")
    instructions: str
    #: what later steps of a transcript say instead of ``instructions`` (its first step, and the
    #: first after each rebuild, carry them in full); None: the full instructions every step
    reminder: str | None = Field(default=None, min_length=1, max_length=400)

    _placeholders = field_validator("instructions", "reminder")(_check_placeholders)


def _catalogue() -> Any:
    # imported when a structure is validated, not with this module: the catalogue is fed by entry
    # points and its helpers import the game layer, which the memory layer does not need otherwise
    from automem.helpers import registry

    return registry


class HelperSpec(_Strict):
    """A helper from the catalogue (``automem helpers``) switched on with parameters.

    The parameters are kept as written (defaults are not filled in) so a structure's content hash
    does not change when a helper gains a parameter.
    """

    name: str
    params: dict[str, int | float | str | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> HelperSpec:
        registry = _catalogue()
        try:
            registry.parse_params(self.name, self.params)
        except registry.HelperError as exc:
            raise ValueError(str(exc)) from None
        return self


class ContextSpec(_Strict):
    #: steps summarised as "Recent steps" where the conversation starts (every step with the rebuild
    #: layout; at the episode's start and after each rebuild with the transcript layout)
    history_steps: int = Field(default=4, ge=0, le=100)
    scope: Literal["episode", "run"] = "episode"
    #: transcript: each step is appended to one conversation, which a prefix cache serves whole,
    #: until it would grow more than ``transcript_growth`` tokens past its first step; then it is
    #: rebuilt. rebuild: every step starts a new conversation after the system message (the layout
    #: before issue 16). A small model on a CPU pays for every token of context (bench/step_floor.py),
    #: so the default growth is short; on a GPU server a long one keeps more of the episode cached.
    layout: Literal["transcript", "rebuild"] = "transcript"
    transcript_growth: int = Field(default=768, ge=0, le=1_000_000)
    #: what an appended step shows of the observation: ``changes``, the parts that differ from the
    #: step before (the transcript holds the rest, so the model has the same information; the
    #: observation is most of a step's new tokens), or ``full``, all of it every step
    observation: Literal["changes", "full"] = "changes"
    #: what the transcript keeps of an earlier step: ``drop``, its first message only (the outcome
    #: line, the observation, the notes; the next step's outcome line says what it did), so the
    #: model sees what the rebuild layout shows it, plus the earlier observations; ``keep``, every
    #: turn, the model's own earlier answers among them. With ``keep`` the bundled 135M model
    #: repeats its earlier answers (a DONE once said is said every step after): it used its memory
    #: 40% less than with the rebuild layout on Crafter seeds 42-51 (docs/speed.md)
    past_turns: Literal["drop", "keep"] = "drop"


#: fields added after structures were first stored: left out of the content hash at their default,
#: so a structure stored before keeps its id
_LATER_CONTEXT_FIELDS = ("layout", "transcript_growth", "observation", "past_turns")


class Prompts(_Strict):
    system: str

    _placeholders = field_validator("system")(_check_placeholders)


class Structure(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    game: str | None = None  # None: usable with any game
    description: str = ""
    prompts: Prompts
    files: list[FileSpec] = Field(default_factory=list)
    operations: OperationsSpec = Field(default_factory=OperationsSpec)
    phases: list[PhaseSpec]
    fallback_action: str
    helpers: list[HelperSpec] = Field(default_factory=list)
    context: ContextSpec = Field(default_factory=ContextSpec)
    # lineage: not part of the content hash
    parent: str | None = None
    author: str = "built-in"

    @model_validator(mode="after")
    def _coherent(self) -> Structure:
        kinds = [p.kind for p in self.phases]
        if kinds not in (["LOG", "PLAN"], ["PLAN"], ["ACT"], ["LOG", "ACT"]):
            raise ValueError(f"phases must be LOG then PLAN, a single PLAN or ACT phase; got {kinds}")
        paths = [f.path for f in self.files]
        dupes = sorted({p for p in paths if paths.count(p) > 1})
        if dupes:
            raise ValueError(f"duplicate file paths: {', '.join(dupes)}")
        if len(self.files) > self.operations.max_files:
            raise ValueError("more files declared than operations.max_files allows")
        return self

    @field_validator("helpers")
    @classmethod
    def _helpers_fit_the_game(cls, helpers: list[HelperSpec], info: ValidationInfo) -> list[HelperSpec]:
        game = info.data.get("game")  # declared before helpers, so already validated
        if game is not None:
            registry = _catalogue()
            for h in helpers:
                found = registry.helper_info(h.name)
                if not found.supports(game):
                    raise ValueError(f"helper {h.name} does not support {game}; it supports: {', '.join(found.games)}")
        return helpers

    # -- identity -------------------------------------------------------------------------
    def content(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude={"parent", "author"})
        context = data["context"]
        for key in _LATER_CONTEXT_FIELDS:
            if context.get(key) == ContextSpec.model_fields[key].default:
                del context[key]
        for phase in data["phases"]:
            if phase.get("reminder") is None:
                phase.pop("reminder", None)
        return data

    @property
    def id(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    # -- derived views --------------------------------------------------------------------
    @property
    def uses_memory(self) -> bool:
        return bool(self.operations.enabled)

    def verbs(self) -> set[Verb]:
        return set(self.operations.enabled)

    def read_verbs(self) -> set[Verb]:
        return self.verbs() & set(READ_VERBS)

    def pinned_files(self) -> list[FileSpec]:
        return [f for f in self.files if f.pinned]

    def memory_limits(self) -> MemoryLimits:
        ops = self.operations
        return MemoryLimits(
            max_files=ops.max_files,
            max_file_chars=ops.max_file_chars,
            max_file_lines=ops.max_file_lines,
            max_read_lines=ops.max_read_lines,
            max_search_results=ops.max_search_results,
            max_text_chars=ops.max_text_chars,
            allow_new_files=ops.allow_new_files,
            files={
                f.path: FileLimits(
                    max_lines=f.max_lines, max_chars=f.max_chars, overflow=f.overflow, read_only=f.read_only
                )
                for f in self.files
            },
        )

    def seed_files(self) -> dict[str, str]:
        return {f.path: f.seed for f in self.files}

    def helper(self, name: str) -> HelperSpec | None:
        return next((h for h in self.helpers if h.name == name), None)

    def derive(self, *, author: str, **changes: Any) -> Structure:
        """A new version with ``changes`` applied, whose parent is this one (never edits in place)."""
        data = self.model_dump(mode="json")
        data.update(changes)
        data["parent"] = self.id
        data["author"] = author
        return Structure.model_validate(data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=100)


# -- loading with line numbers ------------------------------------------------------------
def _node_line(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Walk the composed YAML node tree along a pydantic error location to the closest line."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def structure_from_yaml(text: str, source: str = "<structure>") -> Structure:
    """Parse and validate; raises StructureError naming source, line and field for each problem."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise StructureError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise StructureError(f"{source}:1: a structure is a mapping of fields (name, prompts, files, ...)")
    try:
        return Structure.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            line = _node_line(root, loc)
            field = ".".join(str(p) for p in loc) or "(structure)"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{source}:{line}: {field}: {msg}")
        raise StructureError("\n".join(problems)) from None


def load_structure_file(path: Path) -> Structure:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StructureError(f"cannot read structure file {path}: {exc}") from None
    return structure_from_yaml(text, source=str(path))


def builtin_names() -> list[str]:
    folder = resources.files("automem.memory") / "builtin"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_builtin(name: str) -> Structure:
    folder = resources.files("automem.memory") / "builtin"
    target = folder / f"{name}.yaml"
    if not target.is_file():
        raise StructureError(f"unknown structure {name!r}; built-ins: {', '.join(builtin_names())}")
    return structure_from_yaml(target.read_text(encoding="utf-8"), source=f"builtin/{name}.yaml")


def default_structure_for(game: str) -> str:
    """Name of the built-in starting structure for ``game``."""
    name = f"{game}-v0"
    return name if name in builtin_names() else "none"


def resolve_structure(spec: str) -> Structure:
    """A built-in name or a YAML file path."""
    path = Path(spec)
    if spec.endswith((".yaml", ".yml")) or path.exists():
        if not path.is_file():
            raise StructureError(f"structure file not found: {spec}")
        return load_structure_file(path)
    return load_builtin(spec)
