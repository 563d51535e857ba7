"""The ``automem`` command line (Typer): a front end over the headless core, one module per group
of commands. Heavy modules (the games' environments, llama_cpp, torch) are imported inside the
commands that need them, so ``automem --help`` stays fast."""

from __future__ import annotations

import importlib
import inspect

from automem.cli.app import app

# each module registers its commands on the app when imported; this order is the order of --help
_MODULES = (
    "interactive", "episodes", "export", "info", "engines", "structures", "loop_one", "loop_two", "pipeline", "jobs",
)  # fmt: skip
for _module in _MODULES:
    importlib.import_module(f"automem.cli.{_module}")


def _reflow(doc: str) -> str:
    """A docstring as help text: its paragraphs kept, the line breaks inside each dropped, so the
    terminal wraps sentences instead of breaking them where the source file did."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


_groups = [g.typer_instance for g in app.registered_groups if g.typer_instance is not None]
for _info in [*app.registered_commands, *(c for g in _groups for c in g.registered_commands)]:
    if _info.help is None and _info.callback is not None and _info.callback.__doc__:
        _info.help = _reflow(_info.callback.__doc__)


__all__ = ["app", "main"]


def main() -> None:
    import os

    # automem.jobs.JOB_ENV, spelled out: importing automem.jobs loads the store, which `--help` skips
    if os.environ.get("AUTOMEM_JOB_ID"):
        from automem.jobs import run_as_job

        # started by `start_job`: the same command, but its row records status, progress and exit
        run_as_job(app)
    app()
