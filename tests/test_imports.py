"""The headless core never imports Textual, and nothing imports a heavy library at import time."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ["xllamacpp", "llama_cpp", "torch", "textual", "vllm", "unsloth", "transformers", "nle", "crafter", "minihack"]


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
    assert not {m for m in ("xllamacpp", "llama_cpp", "torch") if m in loaded}


def test_only_the_tui_package_imports_textual() -> None:
    """A source-level check over every module: Textual appears only under automem/tui."""
    import ast
    from pathlib import Path

    import automem

    root = Path(automem.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.relative_to(root).parts[0] == "tui":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] == "textual"]
    assert offenders == []


def test_every_core_module_imports_without_textual() -> None:
    """Import each module outside automem/tui with Textual made unimportable."""
    code = (
        "import sys, pkgutil, importlib, automem\n"
        "sys.modules['textual'] = None\n"
        "for m in pkgutil.walk_packages(automem.__path__, 'automem.'):\n"
        "    if not m.name.startswith('automem.tui') and not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
