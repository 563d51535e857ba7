"""Loop 1: ``optimize`` (a critic revises the memory structure, kept when the paired gate says so)."""

from __future__ import annotations

from typing import Annotated

import typer

from automem.cli.app import (
    DbOption,
    app,
    console,
    err_console,
    fail,
    open_store,
    structure_of,
)
from automem.procs import MAX_WORKERS


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
    candidates: Annotated[int, typer.Option("--candidates", "-c", min=1, help="Proposals per round.")] = 2,
    max_steps: Annotated[
        int, typer.Option("--steps", "--max-steps", "-n", min=1, help="Maximum game steps per episode.")
    ] = 100,
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
    race_hope: Annotated[
        float,
        typer.Option(
            "--race-hope",
            min=0.0,
            help="Gain per unplayed seed racing still deems possible after any heat (4.55: one Crafter achievement).",
        ),
    ] = 4.55,  # fmt: skip
    retry: Annotated[
        bool, typer.Option("--retry/--no-retry", help="One more attempt for the critic after each rejection.")
    ] = True,
    run_name: Annotated[str | None, typer.Option("--run-name", help="Name; rerun it to resume.")] = None,
    db: DbOption = None,
) -> None:
    """Loop 1: a critic reads the trajectories and revises the memory structure; kept only when its
    paired gain over its parent on the same seeds clears the gate (a minimum and its noise)."""
    from automem.engines import EngineError
    from automem.games import get_game_class
    from automem.memory.structure import default_structure_for
    from automem.optimize.critics import make_critic
    from automem.optimize.gate import Gate
    from automem.optimize.loop import OptimizeConfig, Optimizer
    from automem.runs.run import default_run_name
    from automem.runs.seeds import parse_seeds

    if parent not in ("front", "best"):
        fail("--parent must be front or best")
    get_game_class(game)
    root = structure_of(from_ or default_structure_for(game), db)
    seed_list = parse_seeds(seeds)
    task_list: list[str | None] = [t.strip() for item in (tasks or []) for t in item.split(",") if t.strip()]
    store = open_store(db)
    config = OptimizeConfig(
        name=run_name or "optimize-" + default_run_name(game, root.name), game=game, root=root,
        agent_engine=agent_engine, critic=critic, seeds=seed_list, tasks=task_list or [None], iterations=iterations,
        candidates=candidates, max_steps=max_steps, workers=workers, parent=parent, digest_chars=digest_chars,
        gate=Gate(min_gain=min_gain, se_multiple=se_multiple, race_fraction=race_fraction, race_hope=race_hope),
        retry=retry,
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
