"""Engine options as pydantic models: each engine declares what its profile may set, with types.

An unknown or mistyped option (in a profile's ``options`` table, or passed by code) is a one-line
``EngineError`` naming the engine, the option and what is allowed, instead of a ``TypeError`` from
deep inside an engine's constructor.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from automem.engines.base import EngineError

F = TypeVar("F", bound=Callable[..., Any])


class EngineOptions(BaseModel):
    """Base of every engine's options: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


def takes_options(model: type[EngineOptions], engine: str) -> Callable[[F], F]:
    """Wrap an engine factory so its keyword arguments are checked against ``model`` first,
    whoever calls it (``make_engine``, a profile, a test)."""

    def wrap(factory: F) -> F:
        @functools.wraps(factory)
        def checked(target: str, **options: Any) -> Any:
            return factory(target, **check_options(engine, model, options))

        checked.options_model = model  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return wrap


def check_options(engine: str, model: type[EngineOptions], options: Mapping[str, object]) -> dict[str, Any]:
    """The options validated and converted (a "4096" from text becomes 4096), only those given:
    an engine's own defaults stay the constructor's."""
    try:
        parsed = model.model_validate(dict(options))
    except ValidationError as exc:
        raise EngineError(_one_line(engine, model, exc)) from None
    return parsed.model_dump(exclude_unset=True)


def options_of(factory: Callable[..., Any]) -> type[EngineOptions] | None:
    return getattr(factory, "options_model", None)


def _one_line(engine: str, model: type[EngineOptions], exc: ValidationError) -> str:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "?"
    if first["type"] == "extra_forbidden":
        known = ", ".join(sorted(model.model_fields))
        return f"unknown option {key!r} for the {engine} engine; known: {known}"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"option {key!r} of the {engine} engine: {first['msg']}, got {first.get('input')!r}{more}"
