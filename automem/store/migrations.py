"""Schema of the trajectory store, as sqlite-utils migrations (applied in order, never edited).

Add a new function to change the schema; never edit one that has shipped.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("automem")


@migrations()
def m001_initial(db: Database) -> None:
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
            "prompt": str,  # JSON list of chat messages, exactly as sent
            "grammar": str,  # the GBNF grammar that constrained the output, if any
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
        foreign_keys=[("episode_id", "episodes", "id")],
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
            "source": str,  # model | human
            "verb": str,
            "path": str,
            "args": str,  # JSON
            "ok": int,
            "message": str,  # what the agent saw
            "content_before": str,
            "content_after": str,
            "diff": str,  # unified diff for writes
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("episode_id", "episodes", "id"), ("llm_call_id", "llm_calls", "id")],
    )
    db["memory_ops"].create_index(["episode_id", "step"])
