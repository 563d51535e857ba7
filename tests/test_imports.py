"""The headless core never imports Textual, and nothing imports a heavy library at import time."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ["llama_cpp", "torch", "textual", "vllm", "unsloth", "transformers", "nle", "crafter", "minihack"]


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_cli_import_is_light() -> None:
    loaded = _loaded_after("import automem.cli")
    assert not {m for m in HEAVY if m in loaded}


def test_core_never_imports_textual() -> None:
    loaded = _loaded_after(
        "import automem.agent, automem.memory, automem.store, automem.runs, automem.engines, automem.games"
    )
    assert "textual" not in loaded
    assert not {m for m in ("llama_cpp", "torch") if m in loaded}
