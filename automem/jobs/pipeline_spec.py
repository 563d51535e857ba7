"""A pipeline file: the paper's protocol for one game, as YAML checked before anything runs.

The three seed sets must be apart: the evaluation seeds are never played by loop 1's search or by
the episodes loop 2 mines, so the final comparison is on seeds neither learned from.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from automem.errors import AutomemError
from automem.runs.seeds import parse_seeds


class PipelineError(AutomemError):
    """A bad pipeline file, or a stage that failed; the message says which and where."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Seeds(_Section):
    eval: str = Field(description="evaluation seeds: the root, the base and the specialist play these")
    search: str = Field(description="loop 1's fixed seeds")
    train: str = Field(description="seeds of the episodes loop 2 mines")

    @field_validator("eval", "search", "train", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str:
        return str(value)

    def lists(self) -> dict[str, list[int]]:
        return {name: parse_seeds(getattr(self, name)) for name in ("eval", "search", "train")}


class OptimizeSection(_Section):
    iterations: int = Field(3, ge=1)
    candidates: int = Field(2, ge=1)
    critic: str = "heuristic"


class MineSection(_Section):
    min_score: float = 1.0
    min_examples: int = Field(1, ge=1)
    done_share: float = Field(0.5, ge=0.0, le=1.0)


class FinetuneSection(_Section):
    backend: Literal["auto", "unsloth", "peft"] = "auto"
    base: str = "bundled"
    epochs: float = Field(1.0, gt=0)
    train_steps: int | None = Field(None, ge=1)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)


class PipelineSpec(_Section):
    name: str = Field(description="names every run, dataset and model the pipeline makes")
    game: str
    structure: str | None = Field(None, description="the root structure (default: the game's own)")
    tasks: list[str] = Field(default_factory=list)
    engine: str = "llamacpp"
    #: how the specialist plays: its adapter as a GGUF LoRA on llama.cpp, or PEFT on transformers
    specialist_engine: Literal["llamacpp", "transformers"] = "llamacpp"
    steps: int = Field(50, ge=1)
    workers: int = Field(1, ge=1)
    seeds: Seeds
    optimize: OptimizeSection = Field(default_factory=OptimizeSection)  # type: ignore[arg-type]
    mine: MineSection = Field(default_factory=MineSection)  # type: ignore[arg-type]
    finetune: FinetuneSection = Field(default_factory=FinetuneSection)  # type: ignore[arg-type]

    @field_validator("name")
    @classmethod
    def _plain(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
            raise ValueError("letters, digits, '.', '_' and '-' only (it names runs, a dataset and a model)")
        return value

    @model_validator(mode="after")
    def _seeds_apart(self) -> PipelineSpec:
        try:
            lists = self.seeds.lists()
        except ValueError as exc:
            raise ValueError(f"seeds: {exc}") from None
        evaluation = set(lists["eval"])
        for other in ("search", "train"):
            shared = sorted(evaluation & set(lists[other]))
            if shared:
                raise ValueError(
                    f"seeds: the evaluation seeds must be apart from the {other} seeds; both have "
                    f"{', '.join(map(str, shared[:8]))}{' ...' if len(shared) > 8 else ''}"
                )
        return self


def load_pipeline(path: str | Path) -> PipelineSpec:
    """Read and check a pipeline file; PipelineError names the field that is wrong."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"pipeline file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PipelineError(f"{path}: a mapping of settings expected")
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors())
        raise PipelineError(f"{path}: {problems}") from None
    from automem.games import GameError, get_game_class

    try:
        get_game_class(spec.game)
    except GameError as exc:
        raise PipelineError(f"{path}: game: {exc}") from None
    return spec


def example_pipelines() -> dict[str, Path]:
    """The example file of each game shipped with the package."""
    folder = files("automem.jobs") / "pipelines"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}
