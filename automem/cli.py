"""The ``automem`` command line (Typer): a front end over the headless core.

Heavy modules (the games' environments, llama_cpp) are imported inside the commands that need
them, so ``automem --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from automem.procs import MAX_WORKERS

app = typer.Typer(
    name="automem",
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


def _open_store(db: Path | None):  # type: ignore[no-untyped-def]
    from automem.store import Store, StoreError, default_db_path

    try:
        store = Store(db or default_db_path())
    except StoreError as exc:
        fail(str(exc))
    store.mark_orphaned_episodes()  # episodes whose process died without recording an end
    return store


def _structure(spec: str, db: Path | None):  # type: ignore[no-untyped-def]
    """A built-in name, a YAML file, or the id (prefix) of a version stored by the structure editor."""
    from automem.memory.structure import resolve_structure
    from automem.runs.run import find_structure, looks_like_id

    if not looks_like_id(spec):
        return resolve_structure(spec)
    store = _open_store(db)
    try:
        return find_structure(spec, store)
    finally:
        store.close()


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
    from automem.games import GameError, get_game_class
    from automem.memory.structure import StructureError
    from automem.runs.run import check_structure_fits
    from automem.tui.context import TuiContext

    try:
        get_game_class(game)
        chosen = _structure(structure, db) if structure else None
        if chosen is not None:
            check_structure_fits(chosen, game)
    except (GameError, StructureError) as exc:
        fail(str(exc))
    store = _open_store(db)
    tui_ctx = TuiContext(
        store=store, game=game, task=task, seed=seed, structure=chosen, engine_spec=engine,
        memory_engine_spec=memory_engine, max_steps=steps, start_paused=paused, step_delay=delay,
    )  # fmt: skip
    _open_tui(tui_ctx, "play")


@app.command()
def replay(
    episode: Annotated[int | None, typer.Argument(help="Episode id to open (default: the list).")] = None,
    db: DbOption = None,
) -> None:
    """Open the TUI's replay screen on the stored episodes (or one of them)."""
    from automem.tui.context import TuiContext

    store = _open_store(db)
    if episode is not None and not store.has_episode(episode):
        fail(f"no episode {episode} in {store.path}")
    _open_tui(TuiContext(store=store, extra={"episode": episode} if episode is not None else {}), "replay")


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
    from automem.games import GameError, get_game_class, make_game
    from automem.memory.structure import StructureError, default_structure_for
    from automem.runs import RunConfig, SeedError, execute_run, parse_seeds
    from automem.runs.report import print_step, summary_rows, summary_table
    from automem.runs.run import check_structure_fits

    try:
        seeds = parse_seeds(seed)
        if len(seeds) == 1 and episodes > 1:
            seeds = list(range(seeds[0], seeds[0] + episodes))
        get_game_class(game)  # unknown game: fail before anything loads
        chosen = _structure(structure or default_structure_for(game), db)
        check_structure_fits(chosen, game)
        # a profile's options are checked here: bad input (exit 2), unlike a model that fails to load
        spec, options = resolve_engine_spec(engine)
        mem_spec, mem_options = resolve_engine_spec(memory_engine) if memory_engine else (None, {})
        the_game = make_game(game, task)
    except (SeedError, GameError, StructureError, EngineError) as exc:
        fail(str(exc))
    store = _open_store(db)
    try:
        model = make_engine(spec, **options)
        memory_model = make_engine(mem_spec, **mem_options) if mem_spec else None
    except EngineError as exc:
        the_game.close()
        fail(str(exc), code=1)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        transient=as_json,
        disable=as_json,
    )
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
    except (GameError, StructureError) as exc:
        fail(str(exc))
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
    max_steps: Annotated[int, typer.Option("--max-steps", "-n", min=1, help="Maximum steps per episode.")] = 100,
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
    from automem.runs.eval import EvalConfig, EvalError, plan_eval, run_eval, run_eval_ray
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
        chosen = _structure(structure or default_structure_for(game), db)
        task_list: list[str | None] = [t.strip() for item in (tasks or []) for t in item.split(",") if t.strip()]
        spec, options = resolve_engine_spec(engine)
        mem_spec, mem_options = resolve_engine_spec(memory_engine) if memory_engine else (None, {})
    except (SeedError, GameError, StructureError, EngineError, ValueError) as exc:
        fail(str(exc))
    store = _open_store(db)
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
    try:
        plan = plan_eval(store, config)
    except (GameError, StructureError, EvalError) as exc:
        fail(str(exc))
    if not as_json:
        console.print(
            f"run [bold]{config.run_name}[/] (id {plan.run_id}): {len(plan.jobs)} episodes to play, "
            f"{plan.skipped} already finished, {plan.restarted} restarted",
            highlight=False,
        )
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]episodes"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
    )
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
    except EvalError as exc:
        fail(str(exc))
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


@app.command()
def games(
    name: Annotated[str | None, typer.Argument(help="Show one game's tasks and actions.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the games, their tasks and their actions."""
    from automem.games import GameError, game_names, get_game_class

    names = [name] if name else game_names()
    data = []
    try:
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
    except GameError as exc:
        fail(str(exc))
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
    from automem.helpers import HelperError, catalogue

    if game is not None and game not in game_names():
        fail(f"unknown game {game!r}; choose one of: {', '.join(game_names())}")
    try:
        items = [info.to_dict() for info in catalogue(game)]
    except HelperError as exc:
        fail(str(exc))
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


@engines_app.command("list")
def engines_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Engine kinds (from the automem.engines entry points) and the profiles of the config file."""
    from automem.engines import EngineError, engine_names
    from automem.engines.profiles import config_path, list_profiles

    try:
        profiles = list_profiles()
    except EngineError as exc:
        fail(str(exc))
    data = {
        "engines": engine_names(),
        "config": str(config_path()),
        "profiles": {
            n: {"spec": p.spec, "api_key_env": p.api_key_env, "options": p.options} for n, p in profiles.items()
        },
    }
    if as_json:
        console.print_json(json.dumps(data))
        return
    console.print("engines: " + ", ".join(data["engines"]), highlight=False)
    table = Table(title=f"profiles in {data['config']}")
    for col in ("profile", "spec", "api key from", "options"):
        table.add_column(col)
    for name, p in data["profiles"].items():
        table.add_row(name, p["spec"], p["api_key_env"] or "-", json.dumps(p["options"]) if p["options"] else "-")
    console.print(table)


@engines_app.command("test")
def engines_test(
    name: Annotated[str, typer.Argument(help="A profile name or an engine spec (e.g. llamacpp, openai:URL#MODEL).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One real call: prints latency, tokens and tokens per second."""
    import time

    from automem.engines import EngineError, build_engine
    from automem.engines.profiles import engine_test

    try:
        t0 = time.perf_counter()
        engine = build_engine(name)
        load_s = time.perf_counter() - t0
        try:
            result = engine_test(engine)
        finally:
            engine.close()
    except EngineError as exc:
        fail(str(exc), code=1)
    result["load_s"] = round(load_s, 3)
    if as_json:
        console.print_json(json.dumps(result))
        return
    console.print(
        f"{result['engine']} · {result['model']}: {result['latency_s'] * 1000:.0f} ms, "
        f"{result['input_tokens']} in / {result['output_tokens']} out, {result['tokens_per_s']} tok/s, "
        f"structured: {result['structured']}, load {result['load_s']} s\n→ {result['text']!r}"
        + ("" if result["parses"] else " (does not parse as a command)"),
        highlight=False,
    )


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


@app.command()
def serve(
    spec: Annotated[
        str, typer.Argument(help="llamacpp (the bundled model), llamacpp:PATH.gguf or llamacpp:ADAPTER.")
    ] = "llamacpp",
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port (0: a free one).")] = 8080,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel", "-n", min=1, max=64, help="Slots: requests decoded together, each with a prompt cache."
        ),
    ] = 4,
    n_ctx: Annotated[int, typer.Option("--n-ctx", min=256, help="Context tokens of each slot.")] = 4096,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads (default: all cores).")] = None,
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", help="Require the key held by this environment variable.")
    ] = None,
) -> None:
    """Serve a local model over the OpenAI-compatible API (llama.cpp's own server, with parallel
    slots and continuous batching); use it with --engine openai:http://HOST:PORT/v1."""
    import signal
    import threading

    from automem.engines import EngineError, split_spec
    from automem.engines.base import api_key_from_env

    name, target = split_spec(spec)
    if name != "llamacpp":
        fail(f"automem serve serves llama.cpp models (llamacpp, llamacpp:PATH or llamacpp:ADAPTER), not {name!r}")
    from automem.engines.llamacpp import factory

    try:
        key = api_key_from_env(api_key_env) if api_key_env else None
        engine = factory(target, host=host, port=port, n_parallel=parallel, n_ctx=n_ctx, n_threads=threads, api_key=key)
    except EngineError as exc:
        fail(str(exc), code=1)
    console.print(
        f"serving {engine.model} at [bold]{engine.url}/v1[/] ({parallel} slots of {n_ctx} tokens)"
        f"{'; key from $' + api_key_env if api_key_env else ''}\n"
        f"use it with: --engine openai:{engine.url}/v1  ·  ctrl+c stops",
        highlight=False,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        engine.close()


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
    from automem.memory.structure import StructureError, resolve_structure

    try:
        s = resolve_structure(spec)
    except StructureError as exc:
        fail(str(exc))
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


@app.command()
def optimize(
    game: Annotated[str, typer.Argument(help="crafter, minihack or nethack.")],
    from_: Annotated[
        str | None, typer.Option("--from", help="Structure to start from: built-in, YAML file or stored id.")
    ] = None,
    agent_engine: Annotated[str, typer.Option("--agent-engine", help="Engine that plays the episodes.")] = "llamacpp",
    critic: Annotated[
        str,
        typer.Option(
            "--critic",
            help="heuristic (rule-based, no model), an engine spec or profile (whole:SPEC for whole structures), "
            "or command:PROGRAM ARGS (the prompt on stdin, the structure on stdout).",
        ),
    ] = "heuristic",
    seeds: Annotated[str, typer.Option("--seeds", "-s", help="Fixed seeds every candidate plays.")] = "42-51",
    tasks: Annotated[list[str] | None, typer.Option("--tasks", "-t", help="Tasks (repeat or comma-separate).")] = None,
    iterations: Annotated[int, typer.Option("--iterations", "-i", min=1, help="Critic rounds.")] = 3,
    candidates: Annotated[int, typer.Option("--candidates", "-k", min=1, help="Proposals per round.")] = 2,
    max_steps: Annotated[int, typer.Option("--max-steps", "-n", min=1, help="Maximum steps per episode.")] = 100,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=MAX_WORKERS, help="Episodes in parallel.")] = 1,
    parent: Annotated[str, typer.Option(help="front (any Pareto-front member, round robin) or best.")] = "front",
    digest_chars: Annotated[int, typer.Option("--digest-chars", min=1000, help="Digest budget.")] = 12_000,
    min_gain: Annotated[
        float, typer.Option("--min-gain", min=0.0, help="Smallest mean paired gain in progression that counts.")
    ] = 1.0,
    se_multiple: Annotated[
        float, typer.Option("--se-multiple", min=0.0, help="The gain must exceed this many of its standard errors.")
    ] = 1.0,
    race_fraction: Annotated[
        float,
        typer.Option(
            "--race-fraction",
            min=0.0,
            max=1.0,
            help="Share of the seeds played before a candidate that cannot catch up is stopped (0: no racing).",
        ),
    ] = 0.5,  # fmt: skip
    retry: Annotated[
        bool, typer.Option("--retry/--no-retry", help="One more attempt for the critic after each rejection.")
    ] = True,
    run_name: Annotated[str | None, typer.Option("--run-name", help="Name; rerun it to resume.")] = None,
    db: DbOption = None,
) -> None:
    """Loop 1: a critic reads the trajectories and revises the memory structure; kept only when its
    paired gain over its parent on the same seeds clears the gate (a minimum and its noise)."""
    from automem.engines import EngineError
    from automem.games import GameError, get_game_class
    from automem.memory.structure import StructureError, default_structure_for
    from automem.optimize.critics import make_critic
    from automem.optimize.gate import Gate
    from automem.optimize.loop import OptimizeConfig, OptimizeError, Optimizer
    from automem.runs.eval import EvalError
    from automem.runs.run import default_run_name
    from automem.runs.seeds import SeedError, parse_seeds

    if parent not in ("front", "best"):
        fail("--parent must be front or best")
    try:
        get_game_class(game)
        root = _structure(from_ or default_structure_for(game), db)
        seed_list = parse_seeds(seeds)
        task_list: list[str | None] = [t.strip() for item in (tasks or []) for t in item.split(",") if t.strip()]
    except (SeedError, GameError, StructureError) as exc:
        fail(str(exc))
    store = _open_store(db)
    config = OptimizeConfig(
        name=run_name or "optimize-" + default_run_name(game, root.name), game=game, root=root,
        agent_engine=agent_engine, critic=critic, seeds=seed_list, tasks=task_list or [None], iterations=iterations,
        candidates=candidates, max_steps=max_steps, workers=workers, parent=parent, digest_chars=digest_chars,
        gate=Gate(min_gain=min_gain, se_multiple=se_multiple, race_fraction=race_fraction), retry=retry,
    )  # fmt: skip
    try:
        critic_obj = make_critic(critic)
    except (EngineError, ValueError) as exc:
        fail(f"critic: {exc}", 1 if isinstance(exc, EngineError) else 2)
    from automem.jobs import report_progress

    label = f"optimization [bold]{config.name}[/] · critic: {critic_obj.label} ({critic_obj.name})"
    console.print(label, highlight=False)

    def progress(done: int, total: int, info: str) -> None:
        report_progress(done, total, info)  # a no-op unless run as a background job

    progress(0, iterations * candidates, f"optimization {config.name}")
    try:
        result = Optimizer(
            store, config, critic_obj, on_event=lambda m: console.print(m, highlight=False), on_progress=progress
        ).run()
    except (OptimizeError, EvalError, GameError, StructureError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err_console.print(f"interrupted: rerun with --run-name {config.name} to resume")
        raise typer.Exit(130) from None
    finally:
        critic_obj.close()
    console.print(
        f"best: {result.best.name} {result.best.id} progression {result.best_score.mean:.2f} ± "
        f"{result.best_score.se:.2f} (root {result.root_score.mean:.2f} ± {result.root_score.se:.2f}); "
        f"{result.accepted} of {result.candidates} candidates accepted"
        + (
            f" ({result.raced_out} stopped early by racing, ~{result.saved_seconds:.0f} s of play saved)"
            if result.raced_out
            else ""
        )
        + "; Pareto front: "
        + ", ".join(f"{s.id} ({sc.mean:.2f})" for s, sc in result.front),
        highlight=False,
    )
    console.print(f"automem structures tree --db {store.path}  shows the lineage", style="dim", highlight=False)


@app.command()
def mine(
    runs: Annotated[list[str], typer.Option("--runs", "-r", help="Run names to mine (repeat or comma-separate).")],
    out: Annotated[str, typer.Option("--out", "-o", help="Name of the dataset to write.")],
    judge: Annotated[
        str | None, typer.Option("--judge", help="Engine spec or profile that rates each candidate 1-5.")
    ] = None,
    min_examples: Annotated[int, typer.Option("--min-examples", min=1, help="Fail below this many.")] = 1,
    min_score: Annotated[float, typer.Option("--min-score", help="Signals a candidate must reach.")] = 2.0,
    k: Annotated[int, typer.Option("--k", min=1, help="Progress within k steps counts for a decision.")] = 10,
    val_fraction: Annotated[float, typer.Option("--val-fraction", min=0.0, max=0.9)] = 0.2,
    done_share: Annotated[
        float,
        typer.Option("--done-share", min=0.0, max=1.0, help="At most this share of the kept examples answer DONE."),
    ] = 0.5,
    db: DbOption = None,
) -> None:
    """Loop 2: pick the memory decisions worth reinforcing from recorded runs (writes, look-ups and
    the decisions not to write, DONE); write a chat JSONL dataset that records its task/seed pairs."""
    from automem.engines import EngineError, build_engine
    from automem.finetune.mine import MineConfig, MiningError
    from automem.finetune.mine import mine as run_mine
    from automem.runs.run import is_plain_name

    if not is_plain_name(out):
        fail(f"--out must be a plain name (letters, digits, _ . -), not {out!r}")
    names = [n.strip() for item in runs for n in item.split(",") if n.strip()]
    store = _open_store(db)
    judge_engine = None
    if judge:
        try:
            judge_engine = build_engine(judge)
        except EngineError as exc:
            fail(f"judge: {exc}", 1)
    config = MineConfig(runs=names, out=out, k=k, min_score=min_score, min_examples=min_examples,
                        val_fraction=val_fraction, judge=judge, done_share=done_share)  # fmt: skip
    try:
        result = run_mine(store, config, judge=judge_engine, on_event=lambda m: console.print(m, highlight=False))
    except MiningError as exc:
        fail(str(exc))
    finally:
        if judge_engine is not None:
            judge_engine.close()
    console.print(
        f"dataset {out} (id {result.dataset_id}): {result.kept} of {result.candidates} kept; DONE "
        f"{result.done_share:.0%} of them ({result.relabelled} relabelled redundant writes; "
        f"{result.done_candidates} DONE candidates)",
        highlight=False,
    )


def _seed_list(pairs: list[tuple[str | None, int]]) -> str:
    """Task/seed pairs in a line, each task's seeds as ``format_seeds`` writes them ("default: 10-25, 30")."""
    from automem.runs.seeds import format_seeds

    by_task: dict[str | None, list[int]] = {}
    for task, seed in pairs:
        by_task.setdefault(task, []).append(seed)
    return "; ".join(f"{t}: {format_seeds(seeds)}" if t else format_seeds(seeds) for t, seeds in by_task.items())


@app.command()
def compare(
    runs: Annotated[list[str], typer.Argument(help="Run names (e.g. the base model's and the specialist's).")],
    db: DbOption = None,
    same_seeds: Annotated[
        bool, typer.Option("--same-seeds", help="Only the task and seed pairs that every run finished.")
    ] = False,
    held_out: Annotated[
        bool,
        typer.Option("--held-out", help="Only task and seed pairs outside the datasets of the runs' specialists."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Progression and memory-quality figures of runs side by side. Warns when a run that plays a
    specialist is evaluated on task/seed pairs its dataset was mined from."""
    from automem.finetune.compare import common_finished_episodes, quality
    from automem.finetune.ledger import held_out as held_out_of
    from automem.finetune.ledger import held_out_episodes
    from automem.finetune.mine import MiningError

    store = _open_store(db)
    try:
        check = held_out_of(store, runs)
        chosen: dict[str, set[int]] | None = None
        if held_out:
            chosen = held_out_episodes(store, runs, check.pairs)
        if same_seeds:
            common, common_ids = common_finished_episodes(store, runs)
            if chosen is not None:
                common = [p for p in common if (str(p[0]), p[1]) not in check.pairs]
                common_ids = {r: common_ids[r] & chosen[r] for r in runs}
            if not common:
                outside = " outside the datasets" if held_out else ""
                fail(f"the runs have no finished task and seed in common{outside}")
            if not as_json:
                console.print(
                    f"compared on the {len(common)} seeds every run finished: {_seed_list(common)}", highlight=False
                )
            chosen = common_ids
        rows = [quality(store, name, chosen[name] if chosen is not None else None) for name in runs]
    except MiningError as exc:
        fail(str(exc))
    shared = {run: pairs for run, pairs in check.shared.items() if pairs}
    warning = None
    if shared and not held_out:
        detail = "; ".join(f"{run}: {len(pairs)} ({_seed_list(pairs)})" for run, pairs in shared.items())  # type: ignore[arg-type]
        warning = (
            f"NOT HELD OUT: these runs played task/seed pairs the specialists' datasets "
            f"({', '.join(sorted({d for ds in check.datasets.values() for d in ds}))}) were mined from: "
            f"{detail}. Pass --held-out to compare on the others."
        )
    if as_json:
        rows_json = [r.as_row() for r in rows]
        console.print_json(json.dumps({"runs": rows_json, "held_out": held_out, "warning": warning}))
        return
    if warning:
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    table = Table(title="memory quality")
    table.add_column("figure")
    for r in rows:
        table.add_column(r.run, justify="right")
    labels = {
        "game": "game", "episodes": "episodes", "progression_mean": "progression (mean)",
        "progression_se": "progression (standard error)", "valid_op_rate": "valid memory operations",
        "redundant_write_rate": "redundant writes", "writes_read_later": "writes read later",
        "growth_chars_per_step": "memory growth (chars/step)", "tokens_per_step": "tokens per step",
        "calls_per_step": "model calls per step", "ops_per_step": "memory operations per step",
        "useful_writes_per_step": "useful (non-redundant) writes per step",
        "log_done_rate": "LOG turns answering DONE", "empty_lookup_rate": "empty look-ups",
        "unproductive_action_rate": "unproductive actions (stuck, oscillating)",
        "memory_chars_per_step": "memory context (chars/step)",
        "memory_tokens_per_step": "memory context (tokens/step)",
        "helper_writes_per_step": "helper writes per step (apart from the above)",
    }  # fmt: skip
    for key, label in labels.items():
        values = [getattr(r, key) for r in rows]
        table.add_row(label, *(_figure(v, ".3f") for v in values))
    console.print(table)


def _figure(value: object, spec: str) -> str:
    """A table cell: floats formatted, None (nothing to count) as a dash."""
    if value is None:
        return "-"
    return format(value, spec) if isinstance(value, float) else str(value)


@app.command()
def recipes(
    names: Annotated[list[str] | None, typer.Argument(help="Training runs to show (default: all).")] = None,
    db: DbOption = None,
    same_seeds: Annotated[
        bool,
        typer.Option("--same-seeds", help="Count each recipe's runs only on the task and seed pairs all finished."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Loop 2's ledger: each recipe (dataset + training configuration) with the runs that played its
    adapter, set against the runs its dataset was mined from."""
    from automem.finetune.ledger import ledger

    store = _open_store(db)
    found = ledger(store, names or None, same_seeds=same_seeds)
    if names and len(found) < len(set(names)):
        missing = sorted(set(names) - {r.name for r in found})
        fail(f"no training run named {', '.join(map(repr, missing))}")
    if as_json:
        console.print_json(json.dumps([r.as_dict() for r in found]))
        return
    if not found:
        console.print("no recipes yet: automem mine, then automem finetune")
        return
    for recipe in found:
        cfg = recipe.config
        losses = f"loss {recipe.train_loss:.3f}" if recipe.train_loss is not None else "no loss yet"
        if recipe.eval_loss is not None:
            losses += f" / eval {recipe.eval_loss:.3f}"
        seconds = f" in {recipe.train_seconds:.0f} s" if recipe.train_seconds else ""
        ex = recipe.examples
        console.print(
            f"[bold]{recipe.name}[/] ({recipe.status}): {cfg.get('backend', '?')}, r {cfg.get('lora_r')}, "
            f"α {cfg.get('lora_alpha')}, lr {cfg.get('lr')}, {cfg.get('epochs')} epochs, "
            f"{recipe.steps} steps{seconds}, {losses}\n"
            f"  dataset {recipe.dataset}: {ex['kept']} kept of {ex['candidates']} ({ex['train']} train, "
            f"{ex['val']} val), min score {recipe.selection.get('min_score')}, judge {recipe.selection.get('judge')}",
            highlight=False,
        )
        if recipe.seeds is not None:
            shown = _seed_list(recipe.seeds) or "none"
            console.print(f"  on the seeds all its runs finished: {shown}", highlight=False)
        # short headers: the ledger should fit an 80-column terminal; `automem compare` spells them out
        from rich import box

        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False, collapse_padding=True)
        table.add_column("role")
        table.add_column("run", overflow="fold", min_width=14)  # the names are what a reader looks for
        for column in ("ep.", "progress", "valid", "redund.", "read", "growth", "tok/step"):
            table.add_column(column, justify="right")
        for role, rows in (("mined", recipe.mined), ("played", recipe.played)):
            for q in rows:
                table.add_row(
                    role, q.run, str(q.episodes), f"{q.progression_mean:.2f}±{q.progression_se:.2f}",
                    _figure(q.valid_op_rate, ".2f"), _figure(q.redundant_write_rate, ".2f"),
                    _figure(q.writes_read_later, ".2f"),
                    f"{q.growth_chars_per_step:.1f}", f"{q.tokens_per_step:,.0f}",
                )  # fmt: skip
        if not recipe.played:
            table.caption = f"not played yet: automem eval GAME --memory-engine llamacpp:{recipe.adapter}"
        console.print(table)
        for run, n in recipe.not_held_out.items():
            err_console.print(
                f"[bold yellow]warning: NOT HELD OUT:[/] {run} played {n} task/seed pairs that dataset "
                f"{recipe.dataset} was mined from; evaluate on others (automem compare --held-out)",
                highlight=False,
            )
        console.print("valid: memory operations that worked; redund.: writes adding nothing new; read: writes "
                      "read later; growth: memory chars/step", style="dim", highlight=False)  # fmt: skip


@app.command()
def finetune(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="A dataset made by automem mine.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Name of the training run and its adapter.")],
    base: Annotated[
        str, typer.Option("--base", help="Model folder or .gguf file; 'bundled' is the bundled SmolLM2 GGUF.")
    ] = "bundled",
    backend: Annotated[str, typer.Option(help="auto (Unsloth on a CUDA GPU, else peft), unsloth or peft.")] = "auto",
    lora_r: Annotated[int, typer.Option("--lora-r", min=1)] = 8,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", min=1)] = 16,
    target_modules: Annotated[
        str, typer.Option("--target-modules", help="Comma-separated module names.")
    ] = "q_proj,k_proj,v_proj,o_proj",
    epochs: Annotated[float, typer.Option(min=0.01)] = 1.0,
    lr: Annotated[float, typer.Option(min=1e-7)] = 2e-4,
    max_length: Annotated[int, typer.Option("--max-length", min=128)] = 4096,
    max_steps: Annotated[int, typer.Option("--max-steps", help="Cap on optimizer steps (-1: epochs decide).")] = -1,
    precision: Annotated[
        str, typer.Option("--precision", help="auto (bf16 on a GPU that has it, else fp32), bf16 or fp32.")
    ] = "auto",
    gradient_checkpointing: Annotated[
        bool | None,
        typer.Option(
            "--gradient-checkpointing/--no-gradient-checkpointing",
            help="Recompute activations to save memory (default: on a GPU only).",
        ),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run named --out from its checkpoint.")] = False,
    db: DbOption = None,
) -> None:
    """Loop 2: LoRA-train a memory specialist on a mined dataset (loss on the assistant's tokens only)."""
    from automem.engines import EngineError
    from automem.finetune.train import TrainConfig, TrainingError
    from automem.finetune.train import finetune as run_finetune
    from automem.runs.run import is_plain_name

    if not is_plain_name(out):
        fail(f"--out must be a plain name (letters, digits, _ . -), not {out!r}")
    modules = [m.strip() for m in target_modules.split(",") if m.strip()]
    config = TrainConfig(
        dataset=dataset, base=base, out=out, backend=backend, lora_r=lora_r, lora_alpha=lora_alpha,
        target_modules=modules, epochs=epochs, lr=lr, max_length=max_length, max_steps=max_steps,
        precision=precision, gradient_checkpointing=gradient_checkpointing,
    )  # fmt: skip
    store = _open_store(db)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )  # fmt: skip

    from automem.jobs import report_progress

    progress = Progress(
        TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    )  # fmt: skip
    bar = progress.add_task("training", total=None, info="loading the base model")

    def on_log(entry: dict) -> None:  # type: ignore[type-arg]
        if "loss" not in entry:
            return
        step, total = int(entry["step"]), max(int(entry.get("total_steps") or 0), int(entry["step"]))
        # one line per logged step (kept in a job's log file), the bar for a person watching
        progress.console.print(f"step {step}: loss {entry['loss']:.4f}", highlight=False)
        progress.update(bar, completed=step, total=total, info=f"loss {entry['loss']:.3f}")
        report_progress(step, total, f"loss {entry['loss']:.3f}")

    try:
        with progress:
            result = run_finetune(store, config, resume=resume, on_log=on_log)
    except (TrainingError, EngineError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err_console.print(f"interrupted: rerun with --out {out} --resume to continue from the last checkpoint")
        raise typer.Exit(130) from None
    console.print(
        f"training run {out} ({result['backend']}): {result['steps']} steps in {result['train_seconds']:.1f} s, "
        f"train loss {result['train_loss']:.4f}"
        + (f", eval loss {result['eval_loss']:.4f}" if result.get("eval_loss") is not None else "")
        + f"\nadapter: {result['adapter']}"
        + (f"\nGGUF LoRA for llama.cpp: {result['gguf_lora']}" if result.get("gguf_lora") else "")
        + "\ntwo-model play: automem run GAME --memory-engine "
        + (f"llamacpp:{result['adapter']}" if result.get("gguf_lora") else f"transformers:{result['adapter']}"),
        highlight=False,
    )


@structures_app.command("tree")
def structures_tree(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Lineage of every stored structure with its scores and the structural changes of each step."""
    from automem.optimize.lineage import lineage_rows, render_tree

    store = _open_store(db)
    rows = lineage_rows(store)
    if as_json:
        console.print_json(json.dumps(rows))
    else:
        console.print(render_tree(rows))


@structures_app.command("export")
def structures_export(
    spec: Annotated[str, typer.Argument(help="Built-in name or YAML file.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Write a structure as YAML, e.g. to edit it and run it with --structure FILE."""
    from automem.memory.structure import StructureError, resolve_structure

    try:
        s = resolve_structure(spec)
    except StructureError as exc:
        fail(str(exc))
    text = s.to_yaml()
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")


jobs_app = typer.Typer(help="Background jobs (started from the TUI): list, cancel, read logs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


@jobs_app.command("list")
def jobs_list(db: DbOption = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Jobs with status and progress (a job whose process died unrecorded shows as lost)."""
    from automem.jobs import list_jobs, progress_text

    jobs = list_jobs(_open_store(db))
    if as_json:
        console.print_json(json.dumps([j.to_dict() for j in jobs]))
        return
    table = Table(title="jobs")
    for col in ("id", "kind", "status", "progress", "title", "started", "pid"):
        table.add_column(col)
    for j in jobs:
        started = (j.started_at or j.created_at)[:19].replace("T", " ")
        table.add_row(str(j.id), j.kind, j.status, progress_text(j.progress_done, j.progress_total), j.title,
                      started, str(j.pid or "-"))  # fmt: skip
    console.print(table)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[int, typer.Argument(help="Job id (see `automem jobs list`).")],
    db: DbOption = None,
    wait: Annotated[float, typer.Option(min=0.0, help="Seconds to wait for the job to stop.")] = 10.0,
) -> None:
    """Stop a running job (SIGTERM to its process group); it records itself as cancelled."""
    from automem.jobs import JobError, cancel_job

    try:
        job = cancel_job(_open_store(db), job_id, wait_s=wait)
    except JobError as exc:
        fail(str(exc))
    if job.active:
        console.print(f"job {job_id}: asked to stop, still {job.status}")
    else:
        console.print(f"job {job_id}: {job.status}")


@jobs_app.command("log")
def jobs_log(
    job_id: Annotated[int, typer.Argument(help="Job id (see `automem jobs list`).")],
    db: DbOption = None,
    tail: Annotated[int | None, typer.Option("--tail", "-n", min=1, help="Only the last N lines.")] = None,
) -> None:
    """Print a job's output (its stdout and stderr)."""
    from automem.jobs import JobError, read_log

    try:
        text = read_log(_open_store(db), job_id)
    except JobError as exc:
        fail(str(exc))
    lines = text.splitlines()
    typer.echo("\n".join(lines[-tail:] if tail else lines))


def main() -> None:
    import os

    # automem.jobs.JOB_ENV, spelled out: importing automem.jobs loads the store, which `--help` skips
    if os.environ.get("AUTOMEM_JOB_ID"):
        from automem.jobs import run_as_job

        # started by `start_job`: the same command, but its row records status, progress and exit
        run_as_job(app)
    app()


if __name__ == "__main__":
    main()
