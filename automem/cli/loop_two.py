"""Loop 2: ``mine``, ``finetune``, ``compare`` and ``recipes`` (the ledger)."""

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
    open_store,
    progress_bar,
)


@app.command()
def mine(
    runs: Annotated[list[str], typer.Option("--runs", "-r", help="Run names to mine (repeat or comma-separate).")],
    out: Annotated[str, typer.Option("--out", "-o", help="Name of the dataset to write.")],
    judge: Annotated[
        str | None, typer.Option("--judge", help="Engine spec or profile that rates each candidate 1-5.")
    ] = None,
    min_examples: Annotated[int, typer.Option("--min-examples", min=1, help="Fail below this many.")] = 1,
    min_score: Annotated[float, typer.Option("--min-score", help="Signals a candidate must reach.")] = 2.0,
    k: Annotated[
        int, typer.Option("--window", "--k", min=1, help="Progress within this many steps counts for a decision.")
    ] = 10,
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
    from automem.finetune.mine import MineConfig
    from automem.finetune.mine import mine as run_mine
    from automem.runs.run import is_plain_name

    if not is_plain_name(out):
        fail(f"--out must be a plain name (letters, digits, _ . -), not {out!r}")
    names = [n.strip() for item in runs for n in item.split(",") if n.strip()]
    store = open_store(db)
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

    store = open_store(db)
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
    losses: Annotated[
        bool,
        typer.Option("--losses", help="Training and evaluation loss per step instead (what the jobs screen plots)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Loop 2's ledger: each recipe (dataset + training configuration) with the runs that played its
    adapter, set against the runs its dataset was mined from."""
    from automem.finetune.ledger import ledger

    store = open_store(db)
    if losses:
        _print_losses(store, names or [r["name"] for r in store.training_runs_with_datasets()][::-1], as_json)
        return
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


def _print_losses(store, names: list[str], as_json: bool) -> None:  # type: ignore[no-untyped-def]
    """Each training run's losses per step, as JSON or one table per run."""
    from automem.finetune.losses import LossError, loss_curve

    try:
        curves = [loss_curve(store, name) for name in names]
    except LossError as exc:
        fail(str(exc))
    if as_json:
        console.print_json(json.dumps([c.as_dict() for c in curves]))
        return
    if not curves:
        console.print("no training runs yet: automem mine, then automem finetune")
    for curve in curves:
        table = Table(title=f"{curve.name} ({curve.status}): loss per step")
        for column in ("step", "train loss", "eval loss"):
            table.add_column(column, justify="right")
        for step, train, evaluation in curve.rows():
            table.add_row(str(step), _figure(train, ".4f"), _figure(evaluation, ".4f"))
        if not curve.train and not curve.eval:
            table.caption = "no step logged yet"
        console.print(table)


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
    max_steps: Annotated[
        int, typer.Option("--train-steps", "--max-steps", help="Cap on optimizer steps (-1: epochs decide).")
    ] = -1,
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
    from automem.finetune.train import TrainConfig
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
    store = open_store(db)
    from automem.jobs import report_progress

    progress = progress_bar("training", remaining=True)
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
