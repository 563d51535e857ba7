"""Engine registry and specs.

A spec names an engine and its target: ``llamacpp`` (the bundled model), ``llamacpp:PATH`` or a
bare ``PATH.gguf``. Engines come from the ``automem.engines`` entry-point group, so a package can
add one without an edit here.
"""

from __future__ import annotations

from collections.abc import Callable

from automem.engines.base import Completion, Engine, EngineError, Message
from automem.plugins import load, registered

__all__ = [
    "Completion",
    "Engine",
    "EngineError",
    "Message",
    "build_engine",
    "engine_names",
    "make_engine",
    "resolve_engine_spec",
]

_BUILTIN = {
    "llamacpp": "automem.engines.llamacpp:factory",
    "openai": "automem.engines.openai_http:factory",
    "ollama": "automem.engines.ollama:factory",
    "transformers": "automem.engines.transformers_engine:factory",
    "vllm": "automem.engines.vllm_engine:factory",
    "replay": "automem.engines.replay:factory",
}


def _factories() -> dict[str, str]:
    return registered("automem.engines", _BUILTIN)


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
    factory: Callable[..., Engine] = load(factories[name])
    return factory(target, **options)


def resolve_engine_spec(name_or_spec: str) -> tuple[str, dict[str, object]]:
    """A profile name from the user config file -> (its spec, its options); a spec -> (spec, {})."""
    from automem.engines.profiles import resolve_engine

    return resolve_engine(name_or_spec)


def build_engine(name_or_spec: str, **options: object) -> Engine:
    """Build an engine from a spec or a profile name (explicit options override the profile's)."""
    spec, profile_options = resolve_engine_spec(name_or_spec)
    return make_engine(spec, **{**profile_options, **options})
