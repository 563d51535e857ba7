"""Memory structures: ``structures list``, ``show``, ``validate``, ``tree``, ``progression`` and ``export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from automem.cli.app import (
    DbOption,
    console,
    err_console,
    fail,
    open_store,
    structures_app,
)


@structures_app.command("list")
def structures_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the built-in structures."""
    from automem.memory.structure import builtin_names, load_builtin

    items = []
    for n in builtin_names():
        s = load_builtin(n)
        items.append(
            {
                "name": n,
                "id": s.id,
                "game": s.game or "any",
                "files": len(s.files),
                "verbs": len(s.operations.enabled),
                "phases": "/".join(p.kind for p in s.phases),
                "author": s.author,
                "description": s.description,
            }
        )
    if as_json:
        console.print_json(json.dumps(items))
        return
    table = Table(title="structures")
    for col in ("name", "id", "game", "files", "verbs", "phases", "author"):
        table.add_column(col)
    for it in items:
        table.add_row(*(str(it[c]) for c in ("name", "id", "game", "files", "verbs", "phases", "author")))
    console.print(table)


@structures_app.command("show")
def structures_show(spec: Annotated[str, typer.Argument(help="Built-in name or YAML file.")]) -> None:
    """Print a structure as YAML."""
    from automem.memory.structure import resolve_structure

    s = resolve_structure(spec)
    console.print(f"# id {s.id} · parent {s.parent or '-'} · author {s.author}", style="dim", highlight=False)
    typer.echo(s.to_yaml())


@structures_app.command("validate")
def structures_validate(path: Annotated[Path, typer.Argument(help="YAML file to check.")]) -> None:
    """Validate a structure file; errors name the line and the field."""
    from automem.memory.structure import StructureError, load_structure_file

    try:
        s = load_structure_file(path)
    except StructureError as exc:
        for line in str(exc).splitlines():
            err_console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(f"ok: {s.name} (id {s.id}, {len(s.files)} files, {len(s.operations.enabled)} verbs)")


@structures_app.command("tree")
def structures_tree(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Lineage of every stored structure with its scores and the structural changes of each step."""
    from automem.optimize.lineage import lineage_rows, render_tree

    store = open_store(db)
    rows = lineage_rows(store)
    if as_json:
        console.print_json(json.dumps(rows))
    else:
        console.print(render_tree(rows))


@structures_app.command("progression")
def structures_progression(
    optimization: Annotated[
        str | None, typer.Argument(help="Optimization name (automem optimize --run-name; default: the newest).")
    ] = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Loop 1's progression per iteration along an optimization: the parent's mean ± standard error,
    each candidate's and the gate's verdict, the best kept so far (the structures screen plots it: v)."""
    from automem.optimize.progression import ProgressionError, progression, progression_table

    try:
        p = progression(open_store(db), optimization)
    except ProgressionError as exc:
        fail(str(exc))
    if as_json:
        console.print_json(json.dumps(p.as_dict()))
        return
    rows = progression_table(p)
    from rich import box

    # compact, as the recipes ledger: it should fit an 80-column terminal
    table = Table(
        title=f"{p.optimization} ({p.game}, {p.status}): progression per iteration", box=box.SIMPLE_HEAD,
        padding=(0, 1), pad_edge=False, show_edge=False, collapse_padding=True,
    )  # fmt: skip
    for col in rows[0] if rows else ("iter.",):
        table.add_column(col, justify="right" if col not in ("structure", "status") else "left")
    colours = {"accepted": "green", "rejected": "red", "tied": "yellow", "raced_out": "red"}
    for r in rows:
        colour = colours.get(r["status"])
        table.add_row(*(f"[{colour}]{v}[/]" if k == "status" and colour else v for k, v in r.items()))
    console.print(table)


@structures_app.command("export")
def structures_export(
    spec: Annotated[str, typer.Argument(help="Built-in name or YAML file.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Write a structure as YAML, e.g. to edit it and run it with --structure FILE."""
    from automem.memory.structure import resolve_structure

    s = resolve_structure(spec)
    text = s.to_yaml()
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")
