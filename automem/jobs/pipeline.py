"""The paper's protocol as one job: each stage a background job whose output feeds the next.

1. ``root``: evaluate the root structure on the evaluation seeds;
2. ``optimize``: loop 1 on the search seeds; its best accepted structure (or the root) goes on;
3. ``collect``: that structure plays the training seeds, the episodes loop 2 mines;
4. ``mine`` a dataset from them, 5. ``finetune`` a memory specialist on it;
6. ``base`` and 7. ``specialist``: the optimized structure on the evaluation seeds, with the base
   model alone and with the specialist as memory engine;
8. a markdown report with the tables.

Every stage is a ``jobs`` row (shown on the jobs screen, with its log) and a ``pipeline_stages``
row with what it produced. Rerunning the pipeline skips the stages that finished and reruns an
unfinished one under the same names, which the commands themselves resume (evaluations and
optimizations by run name, fine-tuning with ``--resume``).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automem.jobs.child import report_progress
from automem.jobs.pipeline_spec import PipelineError, PipelineSpec
from automem.jobs.supervisor import cancel_job, get_job, reconcile, start_job
from automem.store.db import Store

STAGES = ("root", "optimize", "collect", "mine", "finetune", "base", "specialist", "report")
#: the settings each stage runs with: a rerun may not change them once the stage has finished
_PLAY = ("game", "structure", "tasks", "engine", "steps", "workers")
STAGE_SETTINGS: dict[str, tuple[str, ...]] = {
    "root": (*_PLAY, "seeds.eval"),
    "optimize": (*_PLAY, "seeds.search", "optimize"),
    "collect": (*_PLAY, "seeds.search", "optimize", "seeds.train"),
    "mine": ("mine",),
    "finetune": ("finetune",),
    "base": (*_PLAY, "seeds.eval"),
    "specialist": (*_PLAY, "seeds.eval", "specialist_engine"),
}
#: how often a stage's job row is read while it runs
POLL_S = 0.5


@dataclass
class PipelineResult:
    pipeline_id: int
    report_path: Path
    ran: list[str]  # stages run by this call (the others had finished before)
    outputs: dict[str, dict[str, Any]]


class Pipeline:
    def __init__(
        self,
        store: Store,
        spec: PipelineSpec,
        *,
        report_path: Path | None = None,
        on_stage: Callable[[str, str], None] | None = None,
    ) -> None:
        self.store = store
        self.spec = spec
        self.report_path = report_path or store.path.parent / "reports" / f"{spec.name}.md"
        self.say = on_stage or (lambda _stage, _message: None)
        self.db_args = ["--db", str(store.path)]

    # -- names ---------------------------------------------------------------------------------
    def run_name(self, stage: str) -> str:
        return f"{self.spec.name}/{stage}"

    @property
    def dataset(self) -> str:
        return f"{self.spec.name}-mem"

    @property
    def model(self) -> str:
        return f"{self.spec.name}-spec"

    # -- running ---------------------------------------------------------------------------------
    def run(self) -> PipelineResult:
        spec = self.spec
        row = self.store.pipeline_by_name(spec.name)
        settings = spec.model_dump(mode="json")
        if row is None:
            pipeline_id = self.store.insert_pipeline(spec.name, settings)
        else:
            pipeline_id = int(row["id"])
            self._check_changes(json.loads(row["spec"]), settings, pipeline_id)
            self.store.set_pipeline_status(pipeline_id, "running", spec=settings)
        ran: list[str] = []
        try:
            for index, stage in enumerate(STAGES):
                report_progress(index, len(STAGES), stage)
                done = self.store.pipeline_stages(pipeline_id).get(stage)
                if done is not None and done["status"] == "finished":
                    self.say(stage, "finished before")
                    continue
                output = self._stage(pipeline_id, stage)
                self.store.finish_pipeline_stage(pipeline_id, stage, "finished", output)
                self.say(stage, f"finished: {_describe(output)}")
                ran.append(stage)
            report_progress(len(STAGES), len(STAGES), "finished")
            self.store.set_pipeline_status(pipeline_id, "finished", report_path=str(self.report_path))
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt | SystemExit)
            self.store.set_pipeline_status(pipeline_id, "interrupted" if interrupted else "failed")
            raise
        outputs = {k: v["output"] for k, v in self.store.pipeline_stages(pipeline_id).items()}
        return PipelineResult(pipeline_id, self.report_path, ran, outputs)

    def _check_changes(self, stored: dict[str, Any], settings: dict[str, Any], pipeline_id: int) -> None:
        """A rerun may change the settings of stages not finished yet (a mining threshold after
        mining found too little), never those a finished stage ran with."""
        changed = {k for k in settings if k != "seeds" and stored.get(k) != settings[k]}
        changed |= {f"seeds.{k}" for k, v in settings["seeds"].items() if stored.get("seeds", {}).get(k) != v}
        finished = [s for s, row in self.store.pipeline_stages(pipeline_id).items() if row["status"] == "finished"]
        clashes = sorted({f for stage in finished for f in STAGE_SETTINGS.get(stage, ()) if f in changed})
        if clashes:
            raise PipelineError(
                f"pipeline {self.spec.name!r}: {', '.join(clashes)} changed, but stages that used them have "
                f"finished ({', '.join(finished)}); rerun it unchanged to resume, or change its name"
            )

    def _stage(self, pipeline_id: int, stage: str) -> dict[str, Any]:
        outputs = {k: v["output"] for k, v in self.store.pipeline_stages(pipeline_id).items()}
        if stage == "report":
            self.store.start_pipeline_stage(pipeline_id, stage, None)
            from automem.jobs.pipeline_report import write_report

            write_report(self.store, self, outputs, self.report_path)
            return {"report": str(self.report_path)}
        argv, output = self._command(stage, outputs)
        if argv is None:  # its work is already in the store (a stage interrupted after its job ended)
            self.store.start_pipeline_stage(pipeline_id, stage, None)
            return output
        # an interrupt (Ctrl+C, or SIGTERM when this pipeline runs as a job) waits until the stage's
        # job is recorded: arriving between its start and the wait, it would leave the stage running
        held = _HeldInterrupts()
        with held:
            job_id = start_job(self.store, f"pipeline:{stage}", argv, f"{self.spec.name}: {stage}")
            self.store.start_pipeline_stage(pipeline_id, stage, job_id)
        try:
            held.deliver()
            self.say(stage, f"job {job_id}: automem {' '.join(argv)}")
            job = self._wait(job_id)
        except BaseException:
            self.store.finish_pipeline_stage(pipeline_id, stage, "interrupted", {})
            if get_job(self.store, job_id).active:
                cancel_job(self.store, job_id)
            raise
        if job.status != "finished" or job.exit_code not in (0, None):
            self.store.finish_pipeline_stage(pipeline_id, stage, "failed", {"job": job_id})
            raise PipelineError(
                f"stage {stage} failed (job {job_id}, {job.status}"
                f"{f', exit {job.exit_code}' if job.exit_code is not None else ''}): {job.error or 'see its log'}; "
                "rerun the pipeline to retry it"
            )
        return {**output, **self._after(stage, output), "job": job_id}

    def _wait(self, job_id: int):  # type: ignore[no-untyped-def]
        while True:
            reconcile(self.store)
            job = get_job(self.store, job_id)
            if not job.active:
                return job
            time.sleep(POLL_S)

    def _command(self, stage: str, outputs: dict[str, dict[str, Any]]) -> tuple[list[str] | None, dict[str, Any]]:
        """The stage's ``automem`` arguments and what it will produce (None: nothing left to run)."""
        spec = self.spec
        seeds = spec.seeds
        common = ["--steps", str(spec.steps), "--workers", str(spec.workers), *self._tasks()]
        if stage == "root":
            root = spec.structure or _default_structure(spec.game)
            argv = ["eval", spec.game, "--structure", root, "--seeds", seeds.eval, "--engine", spec.engine]
            return [*argv, *common, "--run-name", self.run_name(stage), *self.db_args], {"run": self.run_name(stage)}
        if stage == "optimize":
            o = spec.optimize
            argv = ["optimize", spec.game, "--from", spec.structure or _default_structure(spec.game)]
            argv += ["--seeds", seeds.search, "--iterations", str(o.iterations), "--candidates", str(o.candidates)]
            argv += ["--critic", o.critic, "--agent-engine", spec.engine, *common]
            return [*argv, "--run-name", self.run_name("loop1"), *self.db_args], {
                "optimization": self.run_name("loop1")
            }
        best = outputs.get("optimize", {}).get("best")
        if stage in ("collect", "base", "specialist"):
            if not best:
                raise PipelineError("the optimize stage recorded no structure to carry on; rerun the pipeline")
            seed_text = seeds.train if stage == "collect" else seeds.eval
            argv = ["eval", spec.game, "--structure", best, "--seeds", seed_text, "--engine", spec.engine]
            if stage == "specialist":
                argv += ["--memory-engine", f"{spec.specialist_engine}:{outputs['finetune']['adapter']}"]
            return [*argv, *common, "--run-name", self.run_name(stage), *self.db_args], {"run": self.run_name(stage)}
        if stage == "mine":
            if self.store.dataset_exists(self.dataset):
                return None, {"dataset": self.dataset}
            m = spec.mine
            argv = ["mine", "--runs", outputs["collect"]["run"], "--out", self.dataset]
            argv += ["--min-score", str(m.min_score), "--min-examples", str(m.min_examples)]
            return [*argv, "--done-share", str(m.done_share), *self.db_args], {"dataset": self.dataset}
        if stage == "finetune":
            f = spec.finetune
            adapter = str(self.store.path.parent / "models" / self.model / "adapter")
            argv = ["finetune", "--dataset", self.dataset, "--out", self.model, "--base", f.base]
            argv += ["--backend", f.backend, "--epochs", str(f.epochs), "--lora-r", str(f.lora_r)]
            argv += ["--lora-alpha", str(f.lora_alpha)]
            if f.train_steps is not None:
                argv += ["--train-steps", str(f.train_steps)]
            training = self.store.training_run_by_name(self.model)
            if training is not None:
                if training["status"] == "finished":
                    return None, {"model": self.model, "adapter": adapter}
                argv.append("--resume")
            return [*argv, *self.db_args], {"model": self.model, "adapter": adapter}
        raise PipelineError(f"unknown stage {stage!r}")

    def _after(self, stage: str, output: dict[str, Any]) -> dict[str, Any]:
        """What a finished stage's job left in the store that the next stages need."""
        if stage != "optimize":
            return {}
        optimization = self.store.optimization_by_name(output["optimization"])
        if optimization is None:
            raise PipelineError(f"the optimize stage recorded no optimization {output['optimization']!r}")
        rows = self.store.iteration_rows(int(optimization["id"]))
        accepted = [r for r in rows if r["status"] == "accepted" and r["candidate_mean"] is not None]
        if accepted:
            best = max(accepted, key=lambda r: r["candidate_mean"])
            return {"best": best["candidate_id"], "accepted": len(accepted), "candidates": len(rows)}
        return {"best": optimization["root_structure_id"], "accepted": 0, "candidates": len(rows)}

    def _tasks(self) -> list[str]:
        return ["--tasks", ",".join(self.spec.tasks)] if self.spec.tasks else []


class _HeldInterrupts:
    """SIGINT and SIGTERM noted, not acted on, inside the block; ``deliver`` then hands them to the
    handlers they were meant for (a job's SIGTERM handler, Ctrl+C's KeyboardInterrupt). A signal
    mask would be simpler, but a child started inside the block would inherit it and could then
    never be cancelled."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _HeldInterrupts:
        if threading.current_thread() is threading.main_thread():  # only there can handlers change
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, lambda number, _frame: self.pending.append(number))
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def deliver(self) -> None:
        for signum in self.pending:
            handler = self.previous.get(signum)
            if callable(handler):
                handler(signum, None)  # a job's SIGTERM handler, or Python's: KeyboardInterrupt
            elif handler != signal.SIG_IGN:
                raise KeyboardInterrupt  # SIGTERM's default: stop as Ctrl+C would, cleanly
        self.pending.clear()


def _default_structure(game: str) -> str:
    from automem.memory.structure import default_structure_for

    return default_structure_for(game)


def _describe(output: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in output.items()) or "done"
