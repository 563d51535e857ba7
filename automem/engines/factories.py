"""Factories behind the ``automem.engines`` entry points: spec target -> Engine."""

from __future__ import annotations

from automem.engines.base import Engine
from automem.engines.bundled import bundled_model_path


def llamacpp(target: str, **options: object) -> Engine:
    from automem.engines.llamacpp import LlamaCppEngine

    path = target or str(bundled_model_path())
    return LlamaCppEngine(path, **options)  # type: ignore[arg-type]
