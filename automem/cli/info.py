"""What this install has: ``games``, ``helpers`` and ``doctor``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from automem.cli.app import (
    DbOption,
    app,
    console,
    err_console,
    fail,
)


@app.command()
def games(
    name: Annotated[str | None, typer.Argument(help="Show one game's tasks and actions.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the games, their tasks and their actions."""
    from automem.games import game_names, get_game_class

    names = [name] if name else game_names()
    data = []
    for n in names:
        cls = get_game_class(n)
        g = cls()
        try:
            data.append(
                {
                    "game": n,
                    "default_task": cls.default_task,
                    "tasks": list(cls.tasks),
                    "actions": [{"name": a.name, "description": a.description} for a in g.actions],
                }
            )
        finally:
            g.close()
    if as_json:
        console.print_json(json.dumps(data))
        return
    for item in data:
        table = Table(title=f"{item['game']} (default task: {item['default_task']})", show_lines=False)
        table.add_column("action")
        table.add_column("description")
        for a in item["actions"]:
            table.add_row(a["name"], a["description"])
        console.print(table)
        console.print("tasks: " + ", ".join(item["tasks"]), highlight=False)


@app.command()
def helpers(
    game: Annotated[str | None, typer.Argument(help="Only the helpers that support this game.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the helpers a structure can switch on: games, parameters (type, default) and what each writes."""
    from rich.markup import escape

    from automem.games import game_names
    from automem.helpers import catalogue

    if game is not None and game not in game_names():
        fail(f"unknown game {game!r}; choose one of: {', '.join(game_names())}")
    items = [info.to_dict() for info in catalogue(game)]
    if as_json:
        console.print_json(json.dumps(items))
        return
    table = Table(title="helpers" + (f" for {game}" if game else ""), show_lines=True)
    table.add_column("helper", no_wrap=True)
    for col in ("games", "parameters", "adds / writes"):
        table.add_column(col, overflow="fold")
    for it in items:
        params = "\n".join(f"{p['name']}: {p['type']} = {p['default']!r}" for p in it["params"]) or "-"
        what = it["description"] + (f"\nwrites: {it['writes']}" if it["writes"] else "")
        table.add_row(it["name"], ", ".join(it["games"]), escape(params), escape(what))
    console.print(table)


@app.command()
def doctor(
    db: DbOption = None,
    extras: Annotated[bool, typer.Option("--extras/--no-extras", help="Also import the optional libraries.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object with every check.")] = False,
) -> None:
    """Check this machine: Python, CPU features, the bundled model generating (in a child process),
    each game, the database, the optional extras and GPU, the engine profiles. Exit 0 when the
    main job can run."""
    from rich.markup import escape

    from automem import doctor as doc

    colours = {doc.OK: "green", doc.WARN: "yellow", doc.FAIL: "bold red"}

    def show(check: doc.Check) -> None:
        if as_json:
            return
        line = f"[{colours[check.verdict]}]{check.verdict:>4}[/] {check.name:<18} {escape(check.detail)}"
        if check.fix and check.verdict != doc.OK:
            line += f"\n{'':23}→ {escape(check.fix)}"
        console.print(line, highlight=False, soft_wrap=True)

    checks = doc.run_checks(db, extras=extras, on_check=show)
    ok = doc.main_job_can_run(checks)
    if as_json:
        typer.echo(doc.as_json(checks))
    elif ok:
        console.print("[green]automem can run here[/]: `automem` opens the TUI with the bundled model", highlight=False)
    else:
        failed = ", ".join(c.name for c in checks if c.essential and c.verdict == doc.FAIL)
        err_console.print(f"[bold red]automem cannot run here[/]: fix {failed} (see → above)", highlight=False)
    raise typer.Exit(0 if ok else 1)
