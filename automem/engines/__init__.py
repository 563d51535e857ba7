"""Engine registry and specs.

A spec names an engine and its target: ``llamacpp`` (the bundled model), ``llamacpp:PATH`` or a
bare ``PATH.gguf``. Engines come from the ``automem.engines`` entry-point group, so a package can
add one without an edit here.
"""

from __future__ import annotations

from collections.abc import Callable

from automem.engines.base import Completion, Engine, EngineError, Message
from automem.engines.options import check_options, options_of
from automem.plugins import load, registered

__all__ = [
    "Completion",
    "Engine",
    "EngineError",
    "Message",
    "build_engine",
    "checked_options",
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


def _factory(spec: str) -> tuple[str, str, Callable[..., Engine]]:
    name, target = split_spec(spec)
    factories = _factories()
    if name not in factories:
        raise EngineError(f"unknown engine {name!r} in spec {spec!r}; known: {', '.join(sorted(factories))}")
    return name, target, load(factories[name])


def checked_options(spec: str, options: dict[str, object]) -> dict[str, object]:
    """``options`` checked against the engine's declared options model (converted, only those given);
    unchecked for an engine from a package that declares none."""
    name, _, factory = _factory(spec)
    model = options_of(factory)
    return options if model is None else check_options(name, model, options)


def make_engine(spec: str = "llamacpp", **options: object) -> Engine:
    _, target, factory = _factory(spec)
    return factory(target, **options)  # a factory with an options model checks them itself


def resolve_engine_spec(name_or_spec: str) -> tuple[str, dict[str, object]]:
    """A profile name from the user config file -> (its spec, its options); a spec -> (spec, {}).

    A profile's options are checked here, before anything runs, so a typo in the config file is one
    line naming the profile rather than a failure in a worker later."""
    from automem.engines.profiles import resolve_engine

    spec, options = resolve_engine(name_or_spec)
    if options:
        try:
            options = checked_options(spec, options)
        except EngineError as exc:
            raise EngineError(f"engine profile {name_or_spec!r}: {exc}") from None
    return spec, options


def build_engine(name_or_spec: str, **options: object) -> Engine:
    """Build an engine from a spec or a profile name (explicit options override the profile's)."""
    spec, profile_options = resolve_engine_spec(name_or_spec)
    return make_engine(spec, **{**profile_options, **options})
