"""The commands that open the TUI: ``play`` (also what a bare ``automem`` does) and ``replay`` (which
also prints an episode's memory sizes per step as text)."""

from __future__ import annotations

from typing import Annotated

import typer

from automem.cli.app import (
    DbOption,
    EngineOption,
    MemoryEngineOption,
    app,
    fail,
    open_store,
    structure_of,
)


@app.callback()
def _default(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        play()


def _open_tui(tui_ctx, mode: str) -> None:  # type: ignore[no-untyped-def]
    try:
        from automem.tui.app import AutomemApp
    except ImportError as exc:  # a core-only install without Textual
        fail(f"the TUI needs Textual: {exc}")
    AutomemApp(tui_ctx, mode=mode).run()


@app.command()
def play(
    game: Annotated[str, typer.Argument(help="crafter, minihack or nethack.")] = "crafter",
    task: Annotated[str | None, typer.Option("--task", "-t", help="Task of the game.")] = None,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed of the first episode.")] = 0,
    structure: Annotated[
        str | None, typer.Option("--structure", help="Built-in structure name or a YAML file (default: GAME-v0).")
    ] = None,
    engine: Annotated[str, EngineOption] = "llamacpp",
    memory_engine: Annotated[str | None, MemoryEngineOption] = None,
    steps: Annotated[int, typer.Option("--steps", "-n", min=1, help="Maximum game steps per episode.")] = 10_000,
    paused: Annotated[bool, typer.Option("--paused", help="Start paused (step with s or .).")] = False,
    delay: Annotated[float, typer.Option("--delay", min=0.0, help="Seconds between steps while running.")] = 0.0,
    db: DbOption = None,
) -> None:
    """Open the TUI and play: the live game, the memory files and the agent's turns side by side."""
    from automem.games import get_game_class
    from automem.runs.run import check_structure_fits
    from automem.tui.context import TuiContext

    get_game_class(game)
    chosen = structure_of(structure, db) if structure else None
    if chosen is not None:
        check_structure_fits(chosen, game)
    store = open_store(db)
    tui_ctx = TuiContext(
        store=store, game=game, task=task, seed=seed, structure=chosen, engine_spec=engine,
        memory_engine_spec=memory_engine, max_steps=steps, start_paused=paused, step_delay=delay,
    )  # fmt: skip
    _open_tui(tui_ctx, "play")


@app.command()
def replay(
    episodes: Annotated[
        list[int] | None,
        typer.Argument(metavar="[EPISODE]...", help="Episode id to open (default: the list); 2 or 3 with --compare."),
    ] = None,
    compare: Annotated[
        bool, typer.Option("--compare", help="Step 2 or 3 episodes of one game, task and seed side by side.")
    ] = False,
    db: DbOption = None,
    memory_sizes: Annotated[
        bool,
        typer.Option(
            "--memory-sizes",
            help="Print each memory file's size in characters per step instead of opening the TUI "
            "(what the replay screen plots: v).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --memory-sizes: every step as JSON.")] = False,
) -> None:
    """Open the TUI's replay screen on the stored episodes (or one of them, or 2-3 compared)."""
    from automem.runs.compare_replay import open_lockstep
    from automem.runs.replay import ReplayError
    from automem.tui.context import TuiContext

    ids = list(episodes or [])
    store = open_store(db)
    if memory_sizes or as_json:
        if len(ids) != 1 or not memory_sizes or compare:
            fail("--memory-sizes needs one episode id (and --json goes with --memory-sizes)")
        if not store.has_episode(ids[0]):
            fail(f"no episode {ids[0]} in {store.path}")
        _print_memory_sizes(store, ids[0], as_json)
        return
    if compare:
        try:
            open_lockstep(store, ids)  # refused here, with exit 2, rather than as a notification
        except ReplayError as exc:  # a CompareError too
            fail(str(exc))
        _open_tui(TuiContext(store=store, extra={"compare": ids}), "replay")
        return
    if len(ids) > 1:
        fail(f"{len(ids)} episodes given: one opens a replay, 2 or 3 need --compare")
    for episode in ids:
        if not store.has_episode(episode):
            fail(f"no episode {episode} in {store.path}")
    _open_tui(TuiContext(store=store, extra={"episode": ids[0]} if ids else {}), "replay")


def _print_memory_sizes(store, episode: int, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    import json

    from rich.table import Table

    from automem.cli.app import console
    from automem.runs.replay import EpisodeReplay

    sizes = EpisodeReplay(store, episode).memory_sizes()
    if as_json:
        console.print_json(json.dumps(sizes.as_dict()))
        return
    table = Table(title=f"episode {episode}: memory chars per file (the steps where a size changed)")
    table.add_column("step", justify="right")
    for path in sizes.files:
        table.add_column(path, justify="right")
    for step, values in sizes.changes():
        table.add_row(str(step), *(str(v) for v in values))
    console.print(table)
