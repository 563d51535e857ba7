"""The helper catalogue: built-ins plus the ``automem.helpers`` entry-point group, loaded by name.

A package adds a helper by declaring ``name = "module:Class"`` under ``automem.helpers``; the class
follows ``automem.helpers.base.Helper`` (name, games, description, writes, a pydantic ``Params``).
The catalogue is read once per process (``refresh()`` reads it again) because structures are
validated often and the entry-point scan walks every installed distribution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from automem.errors import AutomemError
from automem.helpers.base import Helper
from automem.plugins import load, registered

GROUP = "automem.helpers"
_BUILTIN = {
    "unchanged_observation": "automem.helpers.observation:UnchangedObservation",
    "stuck_detector": "automem.helpers.observation:StuckDetector",
    "auto_log": "automem.helpers.memory_keeping:AutoLog",
    "auto_prune": "automem.helpers.memory_keeping:AutoPrune",
    "map_keeper": "automem.helpers.memory_keeping:MapKeeper",
    "position_tracker": "automem.helpers.movement:PositionTracker",
    "oscillation_detector": "automem.helpers.movement:OscillationDetector",
    "passable_directions": "automem.helpers.mapping:PassableDirections",
    "nearest_targets": "automem.helpers.mapping:NearestTargets",
    "vitals_warning": "automem.helpers.vitals:VitalsWarning",
    "achievement_checklist": "automem.helpers.progress:AchievementChecklist",
}


class HelperError(AutomemError, ValueError):
    """An unknown helper, a bad parameter, or a helper the game does not support."""


@dataclass(frozen=True)
class ParamInfo:
    name: str
    type: str
    default: Any
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class HelperInfo:
    name: str
    games: tuple[str, ...]  # empty: every game
    description: str
    writes: str
    params: tuple[ParamInfo, ...]
    target: str

    def supports(self, game: str | None) -> bool:
        return game is None or not self.games or game in self.games

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["games"] = list(self.games) or ["any"]
        data["params"] = [asdict(p) for p in self.params]
        return data


_classes: dict[str, type[Helper]] | None = None
_targets: dict[str, str] = {}


def refresh() -> None:
    """Forget the catalogue; the next look-up reads the entry points again (a package was installed)."""
    global _classes
    _classes = None


def _loaded() -> dict[str, type[Helper]]:
    global _classes
    if _classes is None:
        targets = registered(GROUP, _BUILTIN)
        classes: dict[str, type[Helper]] = {}
        for name, target in targets.items():
            cls = load(target)
            if getattr(cls, "name", name) != name:
                raise HelperError(f"entry point {name} = {target} names a helper called {cls.name!r}")
            classes[name] = cls
        _targets.clear()
        _targets.update(targets)
        _classes = classes
    return _classes


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _params(model: type[BaseModel]) -> tuple[ParamInfo, ...]:
    out = []
    for name, f in model.model_fields.items():
        lo = hi = None
        for m in f.metadata:  # annotated_types Ge/Le from Field(ge=, le=)
            lo = getattr(m, "ge", lo)
            hi = getattr(m, "le", hi)
        default = None if f.default is PydanticUndefined else f.default
        out.append(ParamInfo(name, _type_name(f.annotation), default, f.description or "", lo, hi))
    return tuple(out)


def helper_names() -> list[str]:
    return sorted(_loaded())


def helper_class(name: str) -> type[Helper]:
    classes = _loaded()
    if name not in classes:
        raise HelperError(f"unknown helper {name!r}; known: {', '.join(sorted(classes))}")
    return classes[name]


def helper_info(name: str) -> HelperInfo:
    cls = helper_class(name)
    return HelperInfo(
        name=name,
        games=tuple(cls.games),
        description=cls.description,
        writes=cls.writes,
        params=_params(cls.Params),
        target=_targets.get(name, f"{cls.__module__}:{cls.__qualname__}"),
    )


def catalogue(game: str | None = None) -> list[HelperInfo]:
    """Every helper (those that support ``game`` when one is given), by name."""
    return [i for i in (helper_info(n) for n in helper_names()) if i.supports(game)]


def parse_params(name: str, params: Mapping[str, object]) -> BaseModel:
    """The helper's validated parameters; HelperError names each bad one and the allowed ones."""
    cls = helper_class(name)
    try:
        return cls.Params.model_validate(dict(params))
    except ValidationError as exc:
        allowed = ", ".join(f"{p.name} ({p.type}, default {p.default!r})" for p in _params(cls.Params)) or "none"
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "params"
            if err["type"] == "extra_forbidden":
                problems.append(f"helper {name} has no parameter {where}")
            else:
                problems.append(f"helper {name} parameter {where}: {err['msg']} (got {err.get('input')!r})")
        raise HelperError(f"{'; '.join(problems)}; parameters: {allowed}") from None


def check_helper(name: str, params: Mapping[str, object], game: str | None = None) -> None:
    """Raise HelperError unless ``name`` is known, its ``params`` are valid and it supports ``game``."""
    parse_params(name, params)
    info = helper_info(name)
    if not info.supports(game):
        raise HelperError(f"helper {name} does not support {game}; it supports: {', '.join(info.games)}")


def make_helpers(specs: list[tuple[str, Mapping[str, object]]], game: str | None = None) -> list[Helper]:
    """Instances for a structure's helpers; those that do not support ``game`` are left out (a
    structure for any game may list a Crafter-only helper)."""
    out = []
    for name, params in specs:
        cls = helper_class(name)
        if helper_info(name).supports(game):
            out.append(cls(parse_params(name, params)))
    return out
