"""Recorded episodes checked and taken out: ``verify`` (re-simulate from the seed) and ``export``
(a BALROG-style JSONL log, a ttyrec of a NetHack or MiniHack episode)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from automem.cli.app import DbOption, app, console, fail, open_store


@app.command()
def verify(
    episodes: Annotated[list[int], typer.Argument(help="Episode ids (see `automem replay`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    db: DbOption = None,
) -> None:
    """Replay each episode's recorded actions from its seed in a fresh game and report the first
    step whose observation (or reward, progression, achievements, end) differs from the record;
    0 differences prove the seeding. Exits 1 when any episode differs."""
    from automem.runs.verify import resimulate

    store = open_store(db)
    results = [resimulate(store, episode) for episode in episodes]
    if as_json:
        console.print_json(json.dumps([r.to_dict() for r in results]))
    else:
        for result in results:
            console.print(result.describe(), markup=False, highlight=False)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@app.command()
def export(
    episode: Annotated[int, typer.Argument(help="Episode id (see `automem replay`).")],
    jsonl: Annotated[
        Path | None, typer.Option("--jsonl", help="Write one JSON line per step (BALROG's fields and automem's).")
    ] = None,
    ttyrec: Annotated[
        Path | None,
        typer.Option("--ttyrec", help="Write a ttyrec of a NetHack/MiniHack episode (bz2 when FILE ends in .bz2)."),
    ] = None,
    ttyrec_version: Annotated[
        int, typer.Option("--ttyrec-version", help="1: classic, output only (any player); 3: NLE's, with keys.")
    ] = 1,
    db: DbOption = None,
) -> None:
    """Export a recorded episode: --jsonl for a per-step log beside BALROG's, --ttyrec for a
    recording NLE makes while it re-simulates the episode (refused if the replay differs)."""
    from automem.runs.export import write_jsonl, write_ttyrec

    if jsonl is None and ttyrec is None:
        fail("say what to write: --jsonl FILE, --ttyrec FILE or both")
    store = open_store(db)
    if jsonl is not None:
        count = write_jsonl(store, episode, jsonl)
        console.print(f"wrote {count} steps to {jsonl}", markup=False, highlight=False)
    if ttyrec is not None:
        made = write_ttyrec(store, episode, ttyrec, version=ttyrec_version)
        console.print(
            f"wrote {made.frames} frames (ttyrec version {made.version}) to {made.path}; "
            f"replayed {made.verification.replayed_steps} steps with 0 differences",
            markup=False,
            highlight=False,
        )
