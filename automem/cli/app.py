"""What every command of the ``automem`` command line shares: the Typer app and its groups, the
common options, the consoles, one-line errors, the store and the progress bar.

An ``AutomemError`` that a command lets through is caught once, here, by the app's group: printed
as one line and turned into its exit code. Commands catch only what they handle differently.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from automem.errors import AutomemError

if TYPE_CHECKING:
    from rich.progress import Progress


class _Group(TyperGroup):
    """The command group that turns an ``AutomemError`` from any command into one line and its exit
    code (2 for bad input, 1 for failed work), so no command repeats that handler."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except AutomemError as exc:
            fail(str(exc), exc.exit_code)


app = typer.Typer(
    name="automem",
    cls=_Group,
    help="LLM agents that manage memory as a skill while playing Crafter, MiniHack and NetHack. "
    "With no command, opens the TUI playing Crafter with the bundled model.",
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
engines_app = typer.Typer(help="List engines and profiles; test one with a real call.", no_args_is_help=True)
app.add_typer(engines_app, name="engines")
structures_app = typer.Typer(help="List, show, validate and export memory structures.", no_args_is_help=True)
app.add_typer(structures_app, name="structures")

console = Console()
err_console = Console(stderr=True)

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="SQLite file to record into (default: $AUTOMEM_DB or the user data dir)."),
]


MemoryEngineOption = typer.Option(
    "--memory-engine",
    "-m",
    help="Two-model mode: this engine does LOG and PLAN's memory look-ups; --engine commits the action.",
)
EngineOption = typer.Option(
    "--engine",
    "-e",
    help="Engine spec or profile: llamacpp (bundled model), llamacpp:PATH, PATH.gguf, openai:URL#MODEL, "
    "ollama:MODEL, transformers:PATH, or a profile name from the config file.",
)


def fail(message: str, code: int = 2) -> NoReturn:
    """A clear one-line error (exit 2 for bad input, like Typer's own usage errors)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def open_store(db: Path | None):  # type: ignore[no-untyped-def]
    """The store, closed when the command ends (click's context owns it): commands never close it
    by hand, and an error or Ctrl+C still closes it."""
    from automem.store import Store, default_db_path

    store = Store(db or default_db_path())
    store.mark_orphaned_episodes()  # episodes whose process died without recording an end
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(store.close)
    return store


def progress_bar(label: str, *, disable: bool = False, transient: bool = False, remaining: bool = False) -> Progress:
    """The bar every long command shows: label, bar, done/total, its info field, time (and time left)."""
    # imported here: rich.progress costs ~20 ms that `automem --help` need not pay
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn()]  # fmt: skip
    if remaining:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, console=console, disable=disable, transient=transient)


def structure_of(spec: str, db: Path | None):  # type: ignore[no-untyped-def]
    """A built-in name, a YAML file, or the id (prefix) of a version stored by the structure editor."""
    from automem.memory.structure import resolve_structure
    from automem.runs.run import find_structure, looks_like_id

    if not looks_like_id(spec):
        return resolve_structure(spec)
    return find_structure(spec, open_store(db))
