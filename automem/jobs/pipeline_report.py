"""The pipeline's one report: a markdown file with the stages, loop 1's decisions, loop 2's data
and training, and the evaluation seeds' figures for the root, the base and the specialist."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automem.store.db import Store

if TYPE_CHECKING:
    from automem.jobs.pipeline import Pipeline


def write_report(store: Store, pipeline: Pipeline, outputs: dict[str, dict[str, Any]], path: Path) -> None:
    spec = pipeline.spec
    lines = [
        f"# Pipeline {spec.name} ({spec.game})",
        "",
        f"Seeds: evaluation {spec.seeds.eval}, search {spec.seeds.search}, training {spec.seeds.train}; "
        f"{spec.steps} steps per episode; engine {spec.engine}; specialist on {spec.specialist_engine}.",
        "",
        "## Stages",
        "",
        _table(["stage", "job", "seconds", "output"], [_stage_row(store, s, o) for s, o in outputs.items()]),
        "",
        "## Loop 1 on the search seeds",
        "",
        *_loop_one(store, outputs.get("optimize", {})),
        "",
        "## Loop 2",
        "",
        *_loop_two(store, pipeline),
        "",
        "## The evaluation seeds",
        "",
        *_evaluation(store, outputs),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _stage_row(store: Store, stage: str, output: dict[str, Any]) -> list[Any]:
    job_id = output.get("job")
    seconds = ""
    if job_id is not None:
        job = store.job_row(int(job_id))
        if job and job["started_at"] and job["finished_at"]:
            span = datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
            seconds = f"{span.total_seconds():.0f}"
    shown = ", ".join(f"{k} {v}" for k, v in output.items() if k != "job")
    return [stage, job_id if job_id is not None else "-", seconds, shown]


def _loop_one(store: Store, output: dict[str, Any]) -> list[str]:
    optimization = store.optimization_by_name(output.get("optimization", "")) if output else None
    if optimization is None:
        return ["(no optimization recorded)"]
    rows = []
    for r in store.iteration_rows(int(optimization["id"])):
        gate = json.loads(r["gate"]) if r.get("gate") else {}
        gain = f"{gate['gain']:+.2f} ± {gate['se']:.2f} (n {gate['n']})" if "gain" in gate else "-"
        changes = "; ".join(json.loads(r["changes"] or "[]")) or "-"
        rows.append([r["iteration"], r["candidate"], r["status"], gain, changes])
    best = output.get("best", "")
    return [
        f"{output.get('accepted', 0)} of {output.get('candidates', len(rows))} candidates accepted; "
        f"structure carried on: {store.structure_name(best) or '?'} {best}",
        "",
        _table(["iteration", "candidate", "status", "paired gain", "changes"], rows),
    ]


def _loop_two(store: Store, pipeline: Pipeline) -> list[str]:
    dataset = store.dataset_by_name(pipeline.dataset)
    training = store.training_run_by_name(pipeline.model)
    lines = []
    if dataset is not None:
        lines.append(
            f"Dataset {dataset['name']}: {dataset['kept']} of {dataset['candidates']} memory decisions kept "
            f"({dataset['train']} train, {dataset['val']} validation)."
        )
    if training is not None:
        from automem.finetune.losses import curve_from_log

        curve = curve_from_log(training["name"], training)
        lines += [
            "",
            f"Specialist {training['name']}: {training['backend']}, {training['steps']} steps, train loss "
            f"{_num(training['train_loss'])}, eval loss {_num(training['eval_loss'])}.",
            "",
            _table(["step", "loss", "eval loss"], [[s, _num(v), _num(ev)] for s, v, ev in curve.rows()]),
        ]
    return lines or ["(no dataset recorded)"]


def _evaluation(store: Store, outputs: dict[str, dict[str, Any]]) -> list[str]:
    from automem.finetune.compare import common_finished_episodes, quality

    runs = [outputs[s]["run"] for s in ("root", "base", "specialist") if s in outputs and "run" in outputs[s]]
    if not runs:
        return ["(no evaluation recorded)"]
    common, ids = common_finished_episodes(store, runs)
    rows = []
    for run in runs:
        q = quality(store, run, ids[run])
        rows.append([
            run, q.episodes, f"{q.progression_mean:.2f} ± {q.progression_se:.2f}", _num(q.valid_op_rate),
            _num(q.useful_writes_per_step), _num(q.log_done_rate), f"{q.tokens_per_step:.0f}",
        ])  # fmt: skip
    header = ["run", "episodes", "progression", "valid ops", "useful writes/step", "LOG DONE", "tokens/step"]
    return [f"On the {len(common)} seeds every run finished.", "", _table(header, rows)]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
