"""``automem eval``: many episodes (tasks x seeds) in parallel, resumable by run name.

Parallelism follows the engine: an in-process model (llama.cpp, transformers) cannot be shared
across threads, so each worker *process* loads its own; an HTTP engine is one client shared by
worker *threads*, so a vLLM or llama.cpp server sees concurrent requests and batches them; in-process vLLM is one
engine behind a BatchingEngine that turns the threads' single calls into batched generations. Every
worker writes its own rows to the one SQLite file (WAL, one transaction per step); a ``kill -9``
therefore loses only unfinished episodes, which the next run with the same name deletes and
restarts.
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automem.engines import split_spec
from automem.errors import AutomemError
from automem.games import make_game
from automem.games.base import GameError
from automem.memory.structure import Structure, structure_from_yaml
from automem.runs.episode import EpisodeRunner, EpisodeSummary
from automem.runs.run import check_structure_fits, memory_root, safe_name
from automem.store.db import Store

#: engines that hold a model in this process: one per worker process
IN_PROCESS_ENGINES = frozenset({"llamacpp", "transformers"})
#: engines that generate for many sequences at once: one shared instance behind a BatchingEngine,
#: fed by episode threads
BATCHING_ENGINES = frozenset({"vllm"})


#: told of each episode as it ends: (job, its summary or None, the error that ended it or None)
OnDone = Callable[["EpisodeJob", EpisodeSummary | None, BaseException | None], None]


class EvalError(AutomemError):
    """Bad eval request (e.g. a run name reused with another configuration)."""


@dataclass
class EvalConfig:
    game: str
    tasks: list[str | None]
    seeds: list[int]
    structure: Structure
    engine_spec: str
    engine_options: dict[str, Any] = field(default_factory=dict)
    memory_engine_spec: str | None = None
    memory_engine_options: dict[str, Any] = field(default_factory=dict)
    episodes_per_task: int | None = None
    workers: int = 1
    max_steps: int = 100
    temperature: float = 0.7
    run_name: str = ""
    parallel: str = "auto"  # auto | process | thread

    def seeds_per_task(self) -> list[int]:
        """``--episodes-per-task K``: the first K seeds, extended consecutively past the list's end."""
        k = self.episodes_per_task
        if k is None:
            return list(self.seeds)
        seeds = list(self.seeds[:k])
        nxt = (max(self.seeds) + 1) if self.seeds else 0
        while len(seeds) < k:
            if nxt not in seeds:
                seeds.append(nxt)
            nxt += 1
        return seeds

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a rerun with the same name to continue the same evaluation."""
        return {
            "game": self.game,
            "structure_id": self.structure.id,
            "engine": self.engine_spec,
            "memory_engine": self.memory_engine_spec,
            "max_steps": self.max_steps,
        }


@dataclass(frozen=True)
class EpisodeJob:
    db_path: str
    run_id: int
    game: str
    task: str | None
    seed: int
    structure_yaml: str
    max_steps: int
    temperature: float
    memory_dir: str
    engine_spec: str
    engine_options: tuple[tuple[str, Any], ...] = ()
    memory_engine_spec: str | None = None
    memory_engine_options: tuple[tuple[str, Any], ...] = ()
    #: scope "run": this job continues a chain (one per task, in seed order) whose folder is shared
    chain: bool = False
    #: the chain's previous seed: this episode starts from the folder that one ended with (None:
    #: the chain's first, from the structure's seed files)
    carry_after: int | None = None


@dataclass
class EvalPlan:
    run_id: int
    jobs: list[EpisodeJob]
    skipped: int  # finished episodes kept from an earlier, interrupted invocation
    restarted: int  # unfinished episodes deleted to be played again


# -- planning and resume ---------------------------------------------------------------------
def plan_eval(store: Store, config: EvalConfig) -> EvalPlan:
    check_structure_fits(config.structure, config.game)
    chain = config.structure.context.scope == "run"
    resolved: list[str] = []
    for task in config.tasks:
        probe = make_game(config.game, task)  # validates the task and gives its canonical name
        resolved.append(probe.task)
        probe.close()
    fingerprint = config.fingerprint()
    structure_id = store.save_structure(config.structure)
    existing = store.run_by_name(config.run_name)
    skipped = restarted = 0
    done: set[tuple[str, int]] = set()
    if existing is None:
        run_id = store.create_run(
            name=config.run_name,
            game=config.game,
            task=",".join(resolved),
            structure_id=structure_id,
            engine=config.engine_spec,
            memory_engine=config.memory_engine_spec,
            config={
                **fingerprint,
                "kind": "eval",
                "tasks": resolved,
                "seeds": config.seeds,
                "episodes_per_task": config.episodes_per_task,
                "temperature": config.temperature,
            },
        )
    else:
        previous = json.loads(existing["config"] or "{}")
        diff = {k: (previous.get(k), v) for k, v in fingerprint.items() if previous.get(k) != v}
        if diff:
            detail = "; ".join(f"{k}: was {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise EvalError(f"run {config.run_name!r} exists with another configuration ({detail})")
        run_id = int(existing["id"])
        for ep in store.episodes(run_id):
            if ep["status"] == "finished":
                done.add((ep["task"], int(ep["seed"])))
                skipped += 1
            else:
                store.delete_episode(int(ep["id"]))
                restarted += 1
        store.set_run_status(run_id, "running")
    engine_options = dict(config.engine_options)
    if split_spec(config.engine_spec)[0] == "llamacpp" and config.workers > 1 and "n_threads" not in engine_options:
        # one model per worker process: share the cores instead of oversubscribing them
        engine_options["n_threads"] = max(1, (os.cpu_count() or 1) // config.workers)
    folder = memory_root(store) / safe_name(config.run_name)
    yaml_text = config.structure.to_yaml()
    seeds = config.seeds_per_task()
    jobs = [
        EpisodeJob(
            db_path=str(store.path),
            run_id=run_id,
            game=config.game,
            task=task,
            seed=seed,
            structure_yaml=yaml_text,
            max_steps=config.max_steps,
            temperature=config.temperature,
            memory_dir=str(folder / safe_name(task) / ("shared" if chain else f"seed{seed}")),
            engine_spec=config.engine_spec,
            engine_options=tuple(sorted(engine_options.items())),
            memory_engine_spec=config.memory_engine_spec,
            memory_engine_options=tuple(sorted(config.memory_engine_options.items())),
            chain=chain,
            carry_after=seeds[index - 1] if chain and index else None,
        )
        for task in resolved
        for index, seed in enumerate(seeds)
        if (task, seed) not in done
    ]
    return EvalPlan(run_id=run_id, jobs=jobs, skipped=skipped, restarted=restarted)


def chains(jobs: list[EpisodeJob]) -> list[list[EpisodeJob]]:
    """The units a worker plays: one job each, or for scope "run" one chain per task, in seed order
    (an episode cannot start before the one whose folder it continues has ended)."""
    units: dict[Any, list[EpisodeJob]] = {}
    for index, job in enumerate(jobs):
        units.setdefault(job.task if job.chain else index, []).append(job)
    return list(units.values())


# -- playing one job --------------------------------------------------------------------------
_engine_cache: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}
_engine_lock = threading.Lock()


def _cached_engine(spec: str, options: tuple[tuple[str, Any], ...]) -> Any:
    from automem.engines import make_engine

    key = (spec, options)
    with _engine_lock:
        if key not in _engine_cache:
            engine = make_engine(spec, **dict(options))
            if split_spec(spec)[0] in BATCHING_ENGINES:
                from automem.engines.batching import BatchingEngine

                engine = BatchingEngine(engine)
            _engine_cache[key] = engine
        return _engine_cache[key]


@atexit.register
def _close_cached_engines() -> None:
    # close models before the interpreter tears down llama_cpp's module globals (noisy __del__ otherwise)
    with _engine_lock:
        for engine in _engine_cache.values():
            engine.close()
        _engine_cache.clear()


def play_job(job: EpisodeJob, stop: threading.Event | None = None) -> EpisodeSummary:
    """Play one episode into the job's database (runs in a worker process or thread).

    ``stop`` (thread workers): checked after every step; when set, the episode is recorded as
    interrupted. Ctrl+C reaches only the main thread, so this is how threads learn of it."""
    engine = _cached_engine(job.engine_spec, job.engine_options)
    memory_engine = (
        _cached_engine(job.memory_engine_spec, job.memory_engine_options) if job.memory_engine_spec else None
    )
    store = Store(job.db_path)
    try:
        carry = _carry(store, job) if job.chain else None
    except BaseException:
        store.close()
        raise
    game = make_game(job.game, job.task)
    try:
        runner = EpisodeRunner.start(
            store=store,
            run_id=job.run_id,
            game=game,
            structure=structure_from_yaml(job.structure_yaml),
            engine=engine,
            seed=job.seed,
            memory_dir=Path(job.memory_dir),
            max_steps=job.max_steps,
            temperature=job.temperature,
            memory_engine=memory_engine,
            carry=carry,
        )
        if stop is None:
            return runner.run()
        for _ in runner.steps():
            if stop.is_set():
                return runner.close()
        return runner.summary
    finally:
        game.close()
        store.close()


def _carry(store: Store, job: EpisodeJob) -> tuple[int | None, dict[str, str]]:
    """Where a chained episode starts: the folder its predecessor ended with (or empty, first)."""
    if job.carry_after is None:
        return None, {}
    previous = store.finished_episode(job.run_id, job.task or "", job.carry_after)
    if previous is None:
        raise EvalError(
            f"seed {job.seed} continues the memory of seed {job.carry_after}, which has not finished in this run"
        )
    return int(previous["id"]), json.loads(previous["memory_end"] or "{}")


def play_chain(
    chain: list[EpisodeJob], stop: threading.Event | None = None, on_episode: OnDone | None = None
) -> list[tuple[EpisodeJob, EpisodeSummary | None, BaseException | None]]:
    """Play a scope-"run" chain in order, each episode from the folder the previous one ended with;
    it stops at the first episode that does not finish (a later one would start from a folder
    that a rerun of that episode would not leave): the run's next invocation resumes there.

    ``on_episode`` (thread workers): told of each episode as it ends, so a long chain's progress
    shows episode by episode rather than when the whole chain is done."""
    out: list[tuple[EpisodeJob, EpisodeSummary | None, BaseException | None]] = []
    for job in chain:
        try:
            summary = play_job(job, stop)
        except Exception as exc:
            out.append((job, None, exc))
        else:
            out.append((job, summary, None))
        if on_episode is not None:
            on_episode(*out[-1])
        if out[-1][1] is None or out[-1][1].status != "finished":
            break
    return out


def play_remote(job: EpisodeJob) -> tuple[dict[str, Any], EpisodeSummary]:
    """A Ray task: play into a private SQLite file on the worker, return the episode's rows.

    Workers may sit on other machines, so nothing is written to the driver's database from here;
    the driver imports the returned rows (``Store.import_episode``) into its one file.
    """
    import dataclasses
    import tempfile

    with tempfile.TemporaryDirectory(prefix="automem-ray-") as tmp:
        local = Store(Path(tmp) / "episode.db")
        try:
            structure = structure_from_yaml(job.structure_yaml)
            run_id = local.create_run(
                name="ray-worker", game=job.game, task=job.task or "", structure_id=local.save_structure(structure),
                engine=job.engine_spec, memory_engine=job.memory_engine_spec, config={},
            )  # fmt: skip
        finally:
            local.close()
        summary = play_job(dataclasses.replace(job, db_path=str(Path(tmp) / "episode.db"), run_id=run_id))
        local = Store(Path(tmp) / "episode.db")
        try:
            return local.export_episode(summary.episode_id), summary
        finally:
            local.close()


class _Outcomes:
    """Results as they arrive from either executor: summaries, error count, the run's status.
    Thread workers add their episodes themselves as they end, hence the lock."""

    def __init__(self, on_done: OnDone | None):
        self.on_done = on_done
        self.summaries: list[EpisodeSummary] = []
        self.errors = 0
        self._lock = threading.Lock()

    def add(self, job: EpisodeJob, summary: EpisodeSummary | None, error: BaseException | None) -> None:
        with self._lock:
            if summary is None:
                self.errors += 1  # a crashed worker or task fails that episode only
            else:
                self.summaries.append(summary)
            if self.on_done is not None:
                self.on_done(job, summary, error)

    def status(self) -> str:
        return "failed" if self.errors or any(s.status != "finished" for s in self.summaries) else "finished"


def run_eval_ray(
    store: Store,
    config: EvalConfig,
    plan: EvalPlan,
    *,
    address: str | None = None,
    on_done: OnDone | None = None,
) -> list[EpisodeSummary]:
    """Run the plan's episodes as Ray tasks (``address``: an existing cluster, None: a local instance)."""
    try:
        import ray
    except ImportError:
        raise EvalError("--executor ray needs Ray: pip install 'automem[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "ignore_reinit_error": True}
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = config.workers
        ray.init(**kwargs)
    if any(job.chain for job in plan.jobs):
        raise EvalError("--executor ray does not play scope 'run' chains yet: use the local executor")
    remote = ray.remote(num_cpus=1, max_retries=0)(play_remote)
    refs = {remote.remote(job): job for job in plan.jobs}
    pending = list(refs)
    outcomes = _Outcomes(on_done)
    status = "interrupted"
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    bundle, summary = ray.get(ref)
                except Exception as exc:
                    outcomes.add(refs[ref], None, exc)
                    continue
                summary.episode_id = store.import_episode(bundle, plan.run_id)
                outcomes.add(refs[ref], summary, None)
        status = outcomes.status()
    finally:
        if status == "interrupted":
            for ref in pending:
                ray.cancel(ref, force=True)
        store.finish_run(plan.run_id, status)
        if started_here:
            ray.shutdown()
    return outcomes.summaries


def choose_parallel(config: EvalConfig) -> str:
    if config.parallel != "auto":
        return config.parallel
    names = {split_spec(spec)[0] for spec in (config.engine_spec, config.memory_engine_spec) if spec}
    return "process" if names & IN_PROCESS_ENGINES and config.workers > 1 else "thread"


def run_eval(
    store: Store,
    config: EvalConfig,
    plan: EvalPlan,
    *,
    on_done: OnDone | None = None,
) -> list[EpisodeSummary]:
    """Play the plan's jobs with ``config.workers`` workers; marks the run finished or failed."""
    if config.workers < 1:
        raise GameError("--workers must be at least 1")
    mode = choose_parallel(config)
    executor: Executor
    if mode == "process":
        # spawn: a forked child would inherit the parent's threads and llama.cpp state
        executor = ProcessPoolExecutor(max_workers=config.workers, mp_context=multiprocessing.get_context("spawn"))
    else:
        executor = ThreadPoolExecutor(max_workers=config.workers)
    outcomes = _Outcomes(on_done)
    status = "interrupted"
    stop = threading.Event() if mode == "thread" else None
    try:
        futures: dict[Future[Any], list[EpisodeJob]] = {
            (executor.submit(play_chain, unit, stop, outcomes.add) if stop else executor.submit(play_chain, unit)): unit
            for unit in chains(plan.jobs)
        }
        for fut in as_completed(futures):
            try:
                results = fut.result()
            except Exception as exc:  # the worker itself died: its unit's first episode failed
                outcomes.add(futures[fut][0], None, exc)
                continue
            if stop is None:  # process workers report when their unit is done; threads already did
                for job, summary, error in results:
                    outcomes.add(job, summary, error)
            if len(results) < len(futures[fut]):
                outcomes.errors += 1  # a chain stopped early: the run is not finished
        status = outcomes.status()
    finally:
        if stop is not None:
            stop.set()  # interrupted: episode threads stop after their current step, recorded as interrupted
        # thread workers are waited for (one step at most); process workers got the SIGINT themselves
        executor.shutdown(wait=status != "interrupted" or stop is not None, cancel_futures=True)
        store.finish_run(plan.run_id, status)
    return outcomes.summaries
