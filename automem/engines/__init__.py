"""Engine registry and specs.

A spec names an engine and its target: ``llamacpp`` (the bundled model), ``llamacpp:PATH`` or a
bare ``PATH.gguf``. Engines come from the ``automem.engines`` entry-point group, so a package can
add one without an edit here.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points

from automem.engines.base import Completion, Engine, EngineError, Message

__all__ = ["Completion", "Engine", "EngineError", "Message", "engine_names", "make_engine"]

_BUILTIN = {"llamacpp": "automem.engines.factories:llamacpp"}


def _factories() -> dict[str, str]:
    targets = dict(_BUILTIN)
    for ep in entry_points(group="automem.engines"):
        targets[ep.name] = ep.value
    return targets


def engine_names() -> list[str]:
    return sorted(_factories())


def split_spec(spec: str) -> tuple[str, str]:
    spec = spec.strip()
    if not spec:
        raise EngineError("empty engine spec")
    if spec.endswith(".gguf") and ":" not in spec.split("/")[0]:
        return "llamacpp", spec
    name, _, target = spec.partition(":")
    return name, target


def make_engine(spec: str = "llamacpp", **options: object) -> Engine:
    name, target = split_spec(spec)
    factories = _factories()
    if name not in factories:
        raise EngineError(f"unknown engine {name!r} in spec {spec!r}; known: {', '.join(sorted(factories))}")
    module, _, attr = factories[name].partition(":")
    factory: Callable[..., Engine] = getattr(import_module(module), attr)
    return factory(target, **options)
