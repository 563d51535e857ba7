"""Schema of the trajectory store, as sqlite-utils migrations (applied in order, never edited).

Add a new function to change the schema; never edit one that has shipped.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("automem")


@migrations()
def m001_initial(db: Database) -> None:
    # content-addressed text: prompts, grammars and file contents repeat from call to call and step
    # to step, so each distinct text is stored once (id = sha1 of the text)
    db["texts"].create({"id": str, "text": str}, pk="id")
    db["structures"].create(
        {
            "id": str,  # content hash
            "name": str,
            "game": str,
            "parent": str,
            "author": str,
            "yaml": str,
            "created_at": str,
        },
        pk="id",
    )
    db["runs"].create(
        {
            "id": int,
            "name": str,
            "game": str,
            "task": str,
            "structure_id": str,
            "engine": str,
            "memory_engine": str,
            "config": str,  # JSON: everything needed to rerun
            "status": str,  # running | finished | failed | interrupted
            "created_at": str,
            "finished_at": str,
        },
        pk="id",
        foreign_keys=[("structure_id", "structures", "id")],
    )
    db["runs"].create_index(["name"], unique=True)
    db["episodes"].create(
        {
            "id": int,
            "run_id": int,
            "game": str,
            "task": str,
            "seed": int,
            "structure_id": str,
            "engine": str,
            "model": str,
            "status": str,  # running | finished | failed | interrupted
            "steps": int,
            "total_reward": float,
            "progression": float,
            "achievements": str,  # JSON list
            "ended_reason": str,
            "error": str,
            "memory_dir": str,
            "memory_seed": str,  # JSON {path: content} at the start, so replays rebuild the folder
            "started_at": str,
            "finished_at": str,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id"), ("structure_id", "structures", "id")],
    )
    db["episodes"].create_index(["run_id", "seed"])
    db["steps"].create(
        {
            "id": int,
            "episode_id": int,
            "step": int,  # 0-based index of the game action in the episode
            "observation": str,  # the text the agent saw before acting
            "helper_notes": str,
            "frame": str,  # JSON Frame of the screen the agent saw
            "action": str,
            "action_source": str,  # model | fallback | human
            "reward": float,
            "done": int,
            "progression": float,  # after the action
            "achievements": str,  # JSON list, after the action
            "invalid_outputs": int,
            "llm_calls": int,
            "memory_ops": int,
            "input_tokens": int,
            "cached_tokens": int,
            "output_tokens": int,
            "model_s": float,  # time inside the engine
            "game_s": float,  # time inside the game's step
            "harness_s": float,  # everything else: prompt, parsing, memory, helpers, store
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("episode_id", "episodes", "id")],
    )
    db["steps"].create_index(["episode_id", "step"], unique=True)
    db["llm_calls"].create(
        {
            "id": int,
            "episode_id": int,
            "step": int,
            "phase": str,  # LOG | PLAN | ACT
            "turn": int,
            "engine": str,
            "model": str,
            # JSON [[role, text id], ...]: the messages as sent, each stored once in ``texts`` (a step's
            # calls share the system prompt and the step context); the view llm_calls_full has the JSON
            "prompt_refs": str,
            "grammar_id": str,  # text id of the GBNF grammar that constrained the output, if any
            "response": str,
            "parsed": str,  # the canonical command, or the parse error
            "valid": int,
            "input_tokens": int,
            "cached_tokens": int,
            "output_tokens": int,
            "latency_s": float,
            "finish_reason": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("episode_id", "episodes", "id"), ("grammar_id", "texts", "id")],
    )
    db["llm_calls"].create_index(["episode_id", "step"])
    db["memory_ops"].create(
        {
            "id": int,
            "episode_id": int,
            "step": int,
            "phase": str,
            "turn": int,
            "llm_call_id": int,
            "source": str,  # model | human | helper (a structure's helper, through the trusted path)
            "verb": str,
            "path": str,
            "args": str,  # JSON
            "ok": int,
            "message": str,  # what the agent saw
            "before_id": str,  # text id of the file's content before the operation (view memory_ops_full)
            "after_id": str,  # ... and after it
            "diff": str,  # unified diff for writes
            "created_at": str,
        },
        pk="id",
        foreign_keys=[
            ("episode_id", "episodes", "id"),
            ("llm_call_id", "llm_calls", "id"),
            ("before_id", "texts", "id"),
            ("after_id", "texts", "id"),
        ],
    )
    db["memory_ops"].create_index(["episode_id", "step"])
    db.execute(
        """CREATE VIEW llm_calls_full AS
        SELECT c.*,
          (SELECT json_group_array(json_object('role', m.role, 'content', m.text)) FROM (
             SELECT json_extract(j.value, '$[0]') AS role, t.text AS text
             FROM json_each(c.prompt_refs) j JOIN texts t ON t.id = json_extract(j.value, '$[1]')
             ORDER BY j.key) m) AS prompt,
          (SELECT text FROM texts WHERE id = c.grammar_id) AS grammar
        FROM llm_calls c"""
    )
    db.execute(
        """CREATE VIEW memory_ops_full AS
        SELECT o.*,
          (SELECT text FROM texts WHERE id = o.before_id) AS content_before,
          (SELECT text FROM texts WHERE id = o.after_id) AS content_after
        FROM memory_ops o"""
    )


@migrations()
def m002_jobs(db: Database) -> None:
    # background jobs: each is a subprocess of the CLI (`python -m automem ARGV`); the parent writes
    # the row when it starts one, the child keeps status and progress up to date, so any front end
    # (a TUI started later included) can list, follow and cancel it
    db["jobs"].create(
        {
            "id": int,
            "kind": str,  # eval | optimize | finetune | ...
            "title": str,
            "argv": str,  # JSON list: the CLI arguments after `automem`
            "status": str,  # queued | running | finished | failed | cancelled | lost
            "pid": int,  # the child's process id (also its process group id)
            "progress_done": int,
            "progress_total": int,
            "progress_info": str,
            "log_path": str,  # stdout and stderr of the child
            "exit_code": int,
            "error": str,  # last line of the log when the job failed
            "created_at": str,
            "started_at": str,
            "finished_at": str,
        },
        pk="id",
    )
    db["jobs"].create_index(["status"])


@migrations()
def m003_optimize(db: Database) -> None:
    # loop 1: one row per optimization (its settings, so a rerun under the same name resumes) and
    # one per candidate the critic proposed, with everything needed to audit the decision
    db["optimizations"].create(
        {
            "id": int,
            "name": str,
            "game": str,
            "root_structure_id": str,
            "critic": str,  # engine spec, "heuristic" or "command:..."
            "agent_engine": str,
            "config": str,  # JSON: seeds, tasks, iterations, candidates, max steps, ...
            "status": str,  # running | finished | failed | interrupted
            "created_at": str,
            "finished_at": str,
        },
        pk="id",
        foreign_keys=[("root_structure_id", "structures", "id")],
    )
    db["optimizations"].create_index(["name"], unique=True)
    db["optimize_iterations"].create(
        {
            "id": int,
            "optimization_id": int,
            "iteration": int,  # 0-based
            "candidate": int,  # index of the proposal within the iteration
            "parent_id": str,  # structure the critic revised
            "candidate_id": str,  # the proposed structure (None when the proposal was invalid)
            "critic": str,
            "digest": str,  # the text the critic read
            "analysis": str,  # the critic's own account of what it changed and why
            "proposal": str,  # the critic's raw output (last attempt)
            "attempts": int,  # proposals sent back with validation errors, plus the last one
            "tool_calls": str,  # JSON [{name, arguments, result}]: what the critic looked up before answering
            "changes": str,  # JSON list: the structural changes (code-checked on the two structures)
            "wording": str,  # JSON list: wording-only fields that changed too
            "status": str,  # pending | accepted | rejected | invalid | failed
            "reason": str,  # why accepted or not (scores, tie-break, validation errors)
            "parent_run_id": int,
            "candidate_run_id": int,
            "parent_mean": float,
            "parent_se": float,
            "candidate_mean": float,
            "candidate_se": float,
            "parent_tokens_per_step": float,
            "candidate_tokens_per_step": float,
            "per_seed": str,  # JSON {"task/seed": [parent progression, candidate progression]}
            "created_at": str,
            "finished_at": str,
        },
        pk="id",
        foreign_keys=[
            ("optimization_id", "optimizations", "id"),
            ("parent_id", "structures", "id"),
            ("candidate_id", "structures", "id"),
            ("parent_run_id", "runs", "id"),
            ("candidate_run_id", "runs", "id"),
        ],
    )
    db["optimize_iterations"].create_index(["optimization_id", "iteration", "candidate"], unique=True)


@migrations()
def m004_datasets(db: Database) -> None:
    # loop 2: a mined dataset; its examples and every candidate's decision live in files beside it
    db["datasets"].create(
        {
            "id": int,
            "name": str,
            "runs": str,  # JSON list of run names mined
            "selection": str,  # JSON: the configuration, signal weights and judge rubric used
            "candidates": int,
            "kept": int,
            "train": int,
            "val": int,
            "folder": str,  # train.jsonl, val.jsonl, decisions.jsonl, selection.json
            "created_at": str,
        },
        pk="id",
    )
    db["datasets"].create_index(["name"], unique=True)


@migrations()
def m005_training_runs(db: Database) -> None:
    # loop 2: one row per fine-tuning run (its recipe, its losses as they come, the adapter it made)
    db["training_runs"].create(
        {
            "id": int,
            "name": str,
            "dataset_id": int,
            "base": str,  # model folder, .gguf file or "bundled"
            "backend": str,  # unsloth | peft
            "config": str,  # JSON: the whole recipe (LoRA r, alpha, modules, epochs, lr, max length, ...)
            "status": str,  # running | finished | failed | interrupted
            "adapter": str,  # the PEFT adapter folder the transformers engine loads
            "log": str,  # JSON list of the trainer's logs: step, loss, learning rate, eval loss
            "steps": int,
            "train_loss": float,
            "eval_loss": float,
            "error": str,
            "created_at": str,
            "finished_at": str,
        },
        pk="id",
        foreign_keys=[("dataset_id", "datasets", "id")],
    )
    db["training_runs"].create_index(["name"], unique=True)


@migrations()
def m006_job_cancel_requested(db: Database) -> None:
    # when a cancel was asked for: a job that dies from the signal before its handler is installed
    # records nothing itself, and whichever front end notices first must call it cancelled, not lost
    db["jobs"].add_column("cancel_requested_at", str)


@migrations()
def m007_episode_owner(db: Database) -> None:
    # which process plays a running episode (host and pid): a later start marks the episodes whose
    # process has gone without recording an end, instead of showing them as running forever
    db["episodes"].add_column("host", str)
    db["episodes"].add_column("pid", int)


@migrations()
def m008_gate_and_retries(db: Database) -> None:
    # loop 1's paired gate: its settings and figures with each decision (JSON), and the rejected
    # candidate a retry answers (its candidate index in the same iteration)
    db["optimize_iterations"].add_column("gate", str)
    db["optimize_iterations"].add_column("retry_of", int)


@migrations()
def m009_episode_memory_carry(db: Database) -> None:
    # scope "run": the folder an episode ended with (JSON {path: content}) and the episode whose
    # end it started from, so a chain of episodes resumes from the last one that finished
    db["episodes"].add_column("memory_end", str)
    db["episodes"].add_column("memory_from", int)


@migrations()
def m010_pipelines(db: Database) -> None:
    # the protocol as one job: a pipeline row per name, a row per stage with the job that ran it
    # and what it produced (run names, structure id, dataset, adapter) for the stages after it
    db["pipelines"].create(
        {
            "id": int,
            "name": str,
            "spec": str,  # JSON of the validated pipeline file
            "status": str,  # running | finished | failed | interrupted
            "report_path": str,
            "created_at": str,
            "finished_at": str,
        },
        pk="id",
    )
    db["pipelines"].create_index(["name"], unique=True)
    db["pipeline_stages"].create(
        {
            "id": int,
            "pipeline_id": int,
            "stage": str,
            "job_id": int,
            "status": str,  # running | finished | failed | interrupted
            "output": str,  # JSON
            "started_at": str,
            "finished_at": str,
        },
        pk="id",
        foreign_keys=[("pipeline_id", "pipelines", "id"), ("job_id", "jobs", "id")],
    )
    db["pipeline_stages"].create_index(["pipeline_id", "stage"], unique=True)
