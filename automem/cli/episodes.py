"""Headless play: ``run`` (episodes with per-step lines) and ``eval`` (tasks x seeds, parallel, resumable)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from automem.cli.app import (
    DbOption,
    EngineOption,
    MemoryEngineOption,
    app,
    console,
    err_console,
    fail,
    open_store,
    progress_bar,
    structure_of,
)
from automem.procs import MAX_WORKERS


@app.command()
def run(
    game: Annotated[str, typer.Argument(help="crafter, minihack or nethack (see `automem games`).")],
    task: Annotated[
        str | None, typer.Option("--task", "-t", help="Task of the game (MiniHack task, NetHack env).")
    ] = None,
    seed: Annotated[str, typer.Option("--seed", "-s", help="First seed, or a list such as 42-51 or 1,3,5.")] = "0",
    episodes: Annotated[int, typer.Option("--episodes", "-k", min=1, help="Episodes, on consecutive seeds.")] = 1,
    steps: Annotated[int, typer.Option("--steps", "-n", min=1, help="Maximum game steps per episode.")] = 50,
    structure: Annotated[
        str | None, typer.Option("--structure", help="Built-in structure name or a YAML file (default: GAME-v0).")
    ] = None,
    engine: Annotated[str, EngineOption] = "llamacpp",
    memory_engine: Annotated[str | None, MemoryEngineOption] = None,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0, help="Sampling temperature.")] = 0.7,
    run_name: Annotated[str | None, typer.Option("--run-name", help="Name of the run in the store.")] = None,
    db: DbOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-step lines, only progress and summary.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Play episodes headless with memory operations as actions; every step goes to SQLite."""
    from automem.engines import EngineError, make_engine, resolve_engine_spec
    from automem.games import get_game_class, make_game
    from automem.memory.structure import default_structure_for
    from automem.runs import RunConfig, execute_run, parse_seeds
    from automem.runs.report import print_step, summary_rows, summary_table
    from automem.runs.run import check_structure_fits

    seeds = parse_seeds(seed)
    if len(seeds) == 1 and episodes > 1:
        seeds = list(range(seeds[0], seeds[0] + episodes))
    get_game_class(game)  # unknown game: fail before anything loads
    chosen = structure_of(structure or default_structure_for(game), db)
    check_structure_fits(chosen, game)
    # a profile's options are checked here: bad input (exit 2), unlike a model that fails to load
    spec, options = resolve_engine_spec(engine)
    mem_spec, mem_options = resolve_engine_spec(memory_engine) if memory_engine else (None, {})
    the_game = make_game(game, task)
    store = open_store(db)
    try:
        model = make_engine(spec, **options)
        memory_model = make_engine(mem_spec, **mem_options) if mem_spec else None
    except EngineError as exc:
        the_game.close()
        fail(str(exc), code=1)
    progress = progress_bar("{task.description}", disable=as_json, transient=as_json)
    bar: dict[str, int] = {}

    def on_start(episode_id: int, s: int) -> None:
        bar["id"] = progress.add_task(f"episode {episode_id} seed {s}", total=steps, info="")

    def on_step(event) -> None:  # type: ignore[no-untyped-def]
        progress.update(bar["id"], advance=1, info=f"progress {event.progression:.1f}%")
        if not quiet and not as_json:
            print_step(progress.console, event)

    config = RunConfig(
        game=game,
        task=task,
        seeds=seeds,
        structure=chosen,
        engine_spec=engine,
        memory_engine_spec=memory_engine,
        max_steps=steps,
        temperature=temperature,
        run_name=run_name,
    )
    try:
        with progress:
            run_id, summaries = execute_run(
                config,
                store,
                model,
                game=the_game,
                on_episode_start=on_start,
                on_step=on_step,
                memory_engine=memory_model,
            )
    except KeyboardInterrupt:
        err_console.print("interrupted: finished steps are kept in the store")
        raise typer.Exit(130) from None
    finally:
        model.close()
        if memory_model is not None:
            memory_model.close()
    rows = summary_rows(summaries)
    if as_json:
        console.print_json(json.dumps({"run_id": run_id, "db": str(store.path), "episodes": rows}))
    else:
        console.print(summary_table(rows, title=f"run {run_id} · {game} · {chosen.name}"))
        console.print(f"recorded in {store.path}", style="dim")
    if any(s.status == "failed" for s in summaries):
        raise typer.Exit(1)


@app.command("eval")
def eval_(
    game: Annotated[str, typer.Argument(help="crafter, minihack or nethack.")],
    tasks: Annotated[
        list[str] | None, typer.Option("--tasks", "-t", help="Tasks (repeat or comma-separate); default: the game's.")
    ] = None,
    seeds: Annotated[str, typer.Option("--seeds", "-s", help="Seeds, e.g. 42-51 or 1,3,5.")] = "42-51",
    episodes_per_task: Annotated[
        int | None, typer.Option("--episodes-per-task", "-k", min=1, help="Episodes per task (first K seeds).")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=MAX_WORKERS, help="Episodes in parallel.")] = 1,
    engine: Annotated[str, EngineOption] = "llamacpp",
    memory_engine: Annotated[str | None, MemoryEngineOption] = None,
    structure: Annotated[str | None, typer.Option("--structure", help="Built-in name or YAML file.")] = None,
    run_name: Annotated[
        str | None, typer.Option("--run-name", help="Name in the store; rerun the same name to resume.")
    ] = None,
    max_steps: Annotated[
        int, typer.Option("--steps", "--max-steps", "-n", min=1, help="Maximum game steps per episode.")
    ] = 100,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.7,
    parallel: Annotated[str, typer.Option(help="auto, process or thread (auto: by engine kind).")] = "auto",
    executor: Annotated[str, typer.Option(help="local (this machine) or ray (a Ray cluster).")] = "local",
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Ray cluster address (default: start a local Ray).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write PREFIX.json and PREFIX.csv (default: beside the db).")
    ] = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Evaluate a structure over tasks x seeds, in parallel and resumable, with BALROG-comparable progression."""
    from automem.engines import EngineError, resolve_engine_spec
    from automem.games import GameError, get_game_class
    from automem.memory.structure import StructureError, default_structure_for
    from automem.runs.eval import EvalConfig, plan_eval, run_eval, run_eval_ray
    from automem.runs.metrics import export, summarize
    from automem.runs.report import eval_table
    from automem.runs.run import default_run_name, safe_name
    from automem.runs.seeds import SeedError, parse_seeds

    if parallel not in ("auto", "process", "thread"):
        fail("--parallel must be auto, process or thread")
    if executor not in ("local", "ray"):
        fail("--executor must be local or ray")
    try:
        get_game_class(game)
        seed_list = parse_seeds(seeds)
        chosen = structure_of(structure or default_structure_for(game), db)
        task_list: list[str | None] = [t.strip() for item in (tasks or []) for t in item.split(",") if t.strip()]
        spec, options = resolve_engine_spec(engine)
        mem_spec, mem_options = resolve_engine_spec(memory_engine) if memory_engine else (None, {})
    except (SeedError, GameError, StructureError, EngineError, ValueError) as exc:
        fail(str(exc))
    store = open_store(db)
    from automem.finetune.ledger import seed_warnings

    for warning in seed_warnings(store, [engine, memory_engine], seed_list):
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    config = EvalConfig(
        game=game,
        tasks=task_list or [None],
        seeds=seed_list,
        structure=chosen,
        engine_spec=spec,
        engine_options=options,
        memory_engine_spec=mem_spec,
        memory_engine_options=mem_options,
        episodes_per_task=episodes_per_task,
        workers=workers,
        max_steps=max_steps,
        temperature=temperature,
        run_name=run_name or default_run_name(game, chosen.name),
        parallel=parallel,
    )
    plan = plan_eval(store, config)
    if not as_json:
        console.print(
            f"run [bold]{config.run_name}[/] (id {plan.run_id}): {len(plan.jobs)} episodes to play, "
            f"{plan.skipped} already finished, {plan.restarted} restarted",
            highlight=False,
        )
    progress = progress_bar("episodes", disable=as_json)
    bar = progress.add_task("eval", total=len(plan.jobs), info="")
    problems: list[str] = []
    from automem.jobs import report_progress

    finished = [0]
    report_progress(0, len(plan.jobs), f"run {config.run_name}")  # a no-op unless run as a background job

    def on_done(job, summary, error) -> None:  # type: ignore[no-untyped-def]
        if error is not None:
            problems.append(f"{job.task} seed {job.seed}: {error}")
        elif summary.status != "finished":
            problems.append(f"{job.task} seed {job.seed}: {summary.status} {summary.error or ''}")
        info = f"last: {job.task} seed {job.seed}" + (f" {summary.progression:.1f}%" if summary else " error")
        progress.update(bar, advance=1, info=info)
        finished[0] += 1
        report_progress(finished[0], len(plan.jobs), info)

    try:
        with progress:
            if executor == "ray":
                run_eval_ray(store, config, plan, address=ray_address, on_done=on_done)
            else:
                run_eval(store, config, plan, on_done=on_done)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: rerun with --run-name {config.run_name} to resume")
        raise typer.Exit(130) from None
    summaries = summarize(store, plan.run_id)
    prefix = out or store.path.parent / "evals" / safe_name(config.run_name)
    meta = {
        "run": config.run_name,
        "run_id": plan.run_id,
        "db": str(store.path),
        **config.fingerprint(),
        "seeds": config.seeds_per_task(),
        "workers": workers,
    }
    json_path, csv_path = export(summaries, prefix, meta)
    if as_json:
        console.print_json(json_path.read_text())
    else:
        console.print(eval_table(summaries, title=f"{config.run_name} · {game} · {chosen.name}"))
        console.print(f"wrote {json_path} and {csv_path}", style="dim", highlight=False)
        for p in problems:
            err_console.print(f"[yellow]episode problem:[/] {p}", highlight=False)
    if problems:
        raise typer.Exit(1)
