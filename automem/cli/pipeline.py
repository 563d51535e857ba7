"""The paper's protocol as one command: ``pipeline FILE.yaml`` (or a shipped example's name)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from automem.cli.app import DbOption, app, console, open_store


@app.command()
def pipeline(
    file: Annotated[
        str, typer.Argument(help="Pipeline YAML file, or crafter / minihack / nethack for the shipped example.")
    ],
    report: Annotated[
        Path | None, typer.Option("--report", help="Markdown report path (default: reports/NAME.md beside the db).")
    ] = None,
    show: Annotated[bool, typer.Option("--show", help="Print the file (the example's settings) and stop.")] = False,
    db: DbOption = None,
) -> None:
    """Run the protocol: evaluate the root structure, loop 1 on the search seeds, play the training
    seeds, mine, fine-tune, evaluate base and specialist on the evaluation seeds, write one report.
    Each stage is a background job; rerun the same file to resume from the first unfinished stage."""
    from automem.jobs.pipeline import STAGES, Pipeline
    from automem.jobs.pipeline_spec import example_pipelines, load_pipeline

    examples = example_pipelines()
    path = examples[file] if file in examples and not Path(file).exists() else Path(file)
    spec = load_pipeline(path)
    if show:
        typer.echo(path.read_text(encoding="utf-8"), nl=False)
        return
    store = open_store(db)
    console.print(f"pipeline {spec.name} ({spec.game}): {' > '.join(STAGES)}", highlight=False)

    def on_stage(stage: str, message: str) -> None:
        console.print(f"  {stage}: {message}", markup=False, highlight=False)

    result = Pipeline(store, spec, report_path=report, on_stage=on_stage).run()
    console.print(f"report: {result.report_path}", highlight=False)
