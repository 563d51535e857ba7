"""Loop 1: evaluate, digest, ask the critic, evaluate the candidates on the same seeds, keep what
beats its parent. Every step is recorded, so a rerun under the same name resumes.

Beyond the paper's single greedy line, every evaluated structure that no other beats on every
seed stays on a per-seed Pareto front, and ``parent="front"`` lets later iterations start from any
member of it (round robin by mean progression) rather than only from the best so far.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from automem.memory.structure import Structure, structure_from_yaml
from automem.optimize.changes import structural_changes, wording_changes
from automem.optimize.critics import Critic, HeuristicCritic, Proposal
from automem.runs.eval import EvalConfig, plan_eval, run_eval
from automem.runs.metrics import mean_se
from automem.store.db import Store, now


class OptimizeError(Exception):
    """A bad optimize request (e.g. a name reused with other settings)."""


@dataclass
class OptimizeConfig:
    name: str
    game: str
    root: Structure
    agent_engine: str
    critic: str
    seeds: list[int]
    tasks: list[str | None] = field(default_factory=lambda: [None])
    iterations: int = 3
    candidates: int = 2
    max_steps: int = 100
    workers: int = 1
    temperature: float = 0.7
    agent_engine_options: dict[str, Any] = field(default_factory=dict)
    digest_chars: int = 12_000
    parent: str = "front"  # front | best

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a rerun under the same name to continue the same optimization."""
        return {
            "game": self.game,
            "root": self.root.id,
            "agent_engine": self.agent_engine,
            "critic": self.critic,
            "seeds": self.seeds,
            "tasks": self.tasks,
            "candidates": self.candidates,
            "max_steps": self.max_steps,
        }


@dataclass
class Score:
    run_id: int
    mean: float
    se: float
    tokens_per_step: float
    per_seed: dict[str, float]  # "task/seed" -> progression

    def beats(self, other: Score) -> tuple[bool, str]:
        """Accepted when its mean progression is higher; a tie goes to fewer tokens per step."""
        ours = f"{self.mean:.2f} ± {self.se:.2f}"
        theirs = f"{other.mean:.2f} ± {other.se:.2f}"
        if self.mean > other.mean + 1e-9:
            return True, f"mean progression {ours} > parent {theirs}"
        if abs(self.mean - other.mean) <= 1e-9 and self.tokens_per_step < other.tokens_per_step:
            return True, (
                f"mean progression tied at {ours}; {self.tokens_per_step:.0f} < "
                f"{other.tokens_per_step:.0f} tokens per step"
            )
        if abs(self.mean - other.mean) <= 1e-9:
            return False, (
                f"mean progression tied at {ours}; {self.tokens_per_step:.0f} >= "
                f"{other.tokens_per_step:.0f} tokens per step"
            )
        return False, f"mean progression {ours} <= parent {theirs}"

    def dominates(self, other: Score) -> bool:
        keys = set(self.per_seed) | set(other.per_seed)
        mine = [self.per_seed.get(k, 0.0) for k in keys]
        theirs = [other.per_seed.get(k, 0.0) for k in keys]
        return all(a >= b for a, b in zip(mine, theirs, strict=True)) and any(
            a > b for a, b in zip(mine, theirs, strict=True)
        )


@dataclass
class OptimizeResult:
    optimization_id: int
    best: Structure
    best_score: Score
    root_score: Score
    front: list[tuple[Structure, Score]]
    accepted: int
    candidates: int


def score_run(store: Store, run_id: int) -> Score:
    rows = store.db.execute(
        "SELECT e.task, e.seed, e.progression, e.steps, "
        "COALESCE((SELECT SUM(s.input_tokens + s.output_tokens) FROM steps s WHERE s.episode_id = e.id), 0) "
        "FROM episodes e WHERE e.run_id = ? AND e.status = 'finished' ORDER BY e.task, e.seed",
        [run_id],
    ).fetchall()
    mean, se = mean_se([r[2] for r in rows])
    steps = sum(r[3] for r in rows)
    tokens = sum(r[4] for r in rows)
    return Score(run_id, mean, se, tokens / steps if steps else 0.0, {f"{r[0]}/{r[1]}": r[2] for r in rows})


def pareto_front(scored: list[tuple[Structure, Score]]) -> list[tuple[Structure, Score]]:
    """The structures no other one beats on every seed, best mean first."""
    front = [(s, sc) for s, sc in scored if not any(o.dominates(sc) for _, o in scored if o is not sc)]
    return sorted(front, key=lambda item: (-item[1].mean, item[1].tokens_per_step))


class Optimizer:
    def __init__(
        self,
        store: Store,
        config: OptimizeConfig,
        critic: Critic,
        *,
        on_event: Callable[[str], None] | None = None,
        on_progress: Callable[[int, int, str], None] | None = None,
    ) -> None:
        if config.iterations < 1 or config.candidates < 1:
            raise OptimizeError("--iterations and --candidates must be at least 1")
        self.store = store
        self.config = config
        self.critic = critic
        self.say = on_event or (lambda _msg: None)
        self.on_progress = on_progress or (lambda _done, _total, _info: None)
        self.scores: dict[str, Score] = {}
        self.structures: dict[str, Structure] = {}

    # -- records -----------------------------------------------------------------------------
    def _optimization(self) -> int:
        c = self.config
        row = self.store.db.execute("SELECT id, config FROM optimizations WHERE name = ?", [c.name]).fetchone()
        fingerprint = c.fingerprint()
        if row is not None:
            stored = json.loads(row[1])["fingerprint"]
            if stored != fingerprint:
                diff = ", ".join(k for k in fingerprint if stored.get(k) != fingerprint[k])
                raise OptimizeError(f"optimization {c.name!r} exists with other settings ({diff}); pick another name")
            self.store.db["optimizations"].update(row[0], {"status": "running"})
            return int(row[0])
        self.store.save_structure(c.root)
        return int(
            self.store.db["optimizations"]
            .insert(
                {
                    "name": c.name,
                    "game": c.game,
                    "root_structure_id": c.root.id,
                    "critic": c.critic,
                    "agent_engine": c.agent_engine,
                    "status": "running",
                    "created_at": now(),
                    "config": json.dumps(
                        {
                            "fingerprint": fingerprint,
                            "iterations": c.iterations,
                            "workers": c.workers,
                            "parent": c.parent,
                        }
                    ),
                }  # fmt: skip
            )
            .last_pk  # type: ignore[arg-type]
        )

    def _rows(self, opt_id: int, iteration: int) -> list[dict[str, Any]]:
        return list(
            self.store.db["optimize_iterations"].rows_where(
                "optimization_id = ? AND iteration = ?", [opt_id, iteration], order_by="candidate"
            )
        )

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, structure: Structure, run_name: str) -> Score:
        c = self.config
        self.store.save_structure(structure)
        self.structures[structure.id] = structure
        if structure.id in self.scores:
            return self.scores[structure.id]
        eval_config = EvalConfig(
            game=c.game, tasks=list(c.tasks), seeds=list(c.seeds), structure=structure, engine_spec=c.agent_engine,
            engine_options=dict(c.agent_engine_options), workers=c.workers, max_steps=c.max_steps,
            temperature=c.temperature, run_name=run_name,
        )  # fmt: skip
        plan = plan_eval(self.store, eval_config)
        if plan.jobs:
            self.say(f"evaluating {structure.name} {structure.id} on {len(plan.jobs)} episodes ({run_name})")
        run_eval(self.store, eval_config, plan)
        score = score_run(self.store, plan.run_id)
        self.scores[structure.id] = score
        return score

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> OptimizeResult:
        c = self.config
        opt_id = self._optimization()
        status = "interrupted"
        try:
            root_score = self.evaluate(c.root, f"{c.name}/base")
            self._reload(opt_id)
            self.say(f"root {c.root.name} {c.root.id}: progression {root_score.mean:.2f} ± {root_score.se:.2f}")
            total = c.iterations * c.candidates
            for iteration in range(c.iterations):
                self._iteration(opt_id, iteration)
                self.on_progress((iteration + 1) * c.candidates, total, f"iteration {iteration + 1}/{c.iterations}")
            status = "finished"
        except BaseException:
            status = "interrupted"
            raise
        finally:
            self.store.db["optimizations"].update(opt_id, {"status": status, "finished_at": now()})
        return self._result(opt_id, root_score)

    def _evaluated(self) -> list[tuple[Structure, Score]]:
        return [(self.structures[sid], score) for sid, score in self.scores.items() if sid in self.structures]

    def _pick_parent(self, iteration: int) -> Structure:
        front = pareto_front(self._evaluated())
        if self.config.parent == "best" or len(front) == 1:
            accepted = self._accepted_ids() | {self.config.root.id}
            best = max(
                (item for item in self._evaluated() if item[0].id in accepted),
                key=lambda item: (item[1].mean, -item[1].tokens_per_step),
            )
            return best[0]
        return front[iteration % len(front)][0]

    def _accepted_ids(self) -> set[str]:
        rows = self.store.db.execute(
            "SELECT candidate_id FROM optimize_iterations i JOIN optimizations o ON o.id = i.optimization_id "
            "WHERE o.name = ? AND i.status = 'accepted'",
            [self.config.name],
        ).fetchall()
        return {r[0] for r in rows}

    def _iteration(self, opt_id: int, iteration: int) -> None:
        rows = self._rows(opt_id, iteration)
        if rows and all(r["status"] != "pending" for r in rows):
            self.say(f"iteration {iteration}: already done")
            return
        if not rows:
            rows = self._propose(opt_id, iteration)
        for row in rows:
            if row["status"] == "pending":
                self._judge(row)

    def _reload(self, opt_id: int) -> None:
        """A resumed optimization: the structures and scores its finished candidates earned."""
        for row in self.store.db["optimize_iterations"].rows_where(
            "optimization_id = ? AND candidate_run_id IS NOT NULL", [opt_id]
        ):
            self._load(row["candidate_id"], row["candidate_run_id"])
            self._load(row["parent_id"], row["parent_run_id"])

    def _load(self, structure_id: str, run_id: int) -> None:
        if structure_id not in self.structures:
            yaml_text = self.store.db.execute("SELECT yaml FROM structures WHERE id = ?", [structure_id]).fetchone()[0]
            self.structures[structure_id] = structure_from_yaml(yaml_text)
        if structure_id not in self.scores:
            self.scores[structure_id] = score_run(self.store, run_id)

    def _propose(self, opt_id: int, iteration: int) -> list[dict[str, Any]]:
        from automem.optimize.digest import build_digest

        c = self.config
        parent = self._pick_parent(iteration)
        parent_score = self.scores[parent.id]
        digest = build_digest(self.store, parent_score.run_id)
        digest_text = digest.to_text(budget_chars=c.digest_chars)
        if isinstance(self.critic, HeuristicCritic):
            from automem.optimize.signals import signals_from_digest

            self.critic.signals = signals_from_digest(digest)
        if hasattr(self.critic, "store"):
            self.critic.store = self.store  # an LLM critic's tools read any step or file from it
        tried = set(self.structures)
        self.say(f"iteration {iteration}: {self.critic.label} revises {parent.name} {parent.id} "
                 f"(progression {parent_score.mean:.2f})")  # fmt: skip
        proposals = self.critic.propose(parent, digest_text, c.candidates, tried)
        if not proposals:
            proposals = [Proposal(None, "", errors=["the critic had no applicable revision"])]
        for index, proposal in enumerate(proposals):
            child = proposal.structure
            if child is not None:
                self.store.save_structure(child)
                self.structures[child.id] = child
            self.store.db["optimize_iterations"].insert(
                {
                    "optimization_id": opt_id,
                    "iteration": iteration,
                    "candidate": index,
                    "parent_id": parent.id,
                    "candidate_id": child.id if child else None,
                    "critic": self.critic.name,
                    "digest": digest_text,
                    "analysis": proposal.analysis,
                    "proposal": proposal.raw,
                    "attempts": proposal.attempts,
                    "tool_calls": json.dumps(proposal.tool_calls),
                    "changes": json.dumps(structural_changes(parent, child) if child else []),
                    "wording": json.dumps(wording_changes(parent, child) if child else []),
                    "status": "pending" if child else "invalid",
                    "reason": None if child else "; ".join(proposal.errors) or "no proposal",
                    "parent_run_id": parent_score.run_id,
                    "parent_mean": parent_score.mean,
                    "parent_se": parent_score.se,
                    "parent_tokens_per_step": parent_score.tokens_per_step,
                    "created_at": now(),
                    "finished_at": None if child else now(),
                }  # fmt: skip
            )
            if child is None:
                self.say(f"  candidate {index}: refused: {'; '.join(proposal.errors)}")
        return self._rows(opt_id, iteration)

    def _judge(self, row: dict[str, Any]) -> None:
        c = self.config
        child = self.structures.get(row["candidate_id"])
        if child is None:
            yaml_text = self.store.db.execute("SELECT yaml FROM structures WHERE id = ?", [row["candidate_id"]])
            child = structure_from_yaml(yaml_text.fetchone()[0])
        self._load(row["parent_id"], row["parent_run_id"])
        parent_score = self.scores[row["parent_id"]]
        changes = json.loads(row["changes"] or "[]")
        self.say(f"  candidate {row['candidate']} {child.id}: {'; '.join(changes)}")
        score = self.evaluate(child, f"{c.name}/i{row['iteration']}c{row['candidate']}-{child.id[:8]}")
        accepted, reason = score.beats(parent_score)
        keys = sorted(set(score.per_seed) | set(parent_score.per_seed))
        per_seed = {k: [parent_score.per_seed.get(k), score.per_seed.get(k)] for k in keys}
        self.store.db["optimize_iterations"].update(
            row["id"],
            {
                "status": "accepted" if accepted else "rejected",
                "reason": reason,
                "candidate_run_id": score.run_id,
                "candidate_mean": score.mean,
                "candidate_se": score.se,
                "candidate_tokens_per_step": score.tokens_per_step,
                "per_seed": json.dumps(per_seed),
                "finished_at": now(),
            },  # fmt: skip
        )
        self.say(f"  {'ACCEPTED' if accepted else 'rejected'}: {reason}")

    def _result(self, opt_id: int, root_score: Score) -> OptimizeResult:
        evaluated = self._evaluated()
        accepted = self._accepted_ids() | {self.config.root.id}
        best, best_score = max(
            ((s, sc) for s, sc in evaluated if s.id in accepted),
            key=lambda item: (item[1].mean, -item[1].tokens_per_step),
        )
        counts = self.store.db.execute(
            "SELECT COUNT(*), SUM(status = 'accepted') FROM optimize_iterations WHERE optimization_id = ?", [opt_id]
        ).fetchone()
        return OptimizeResult(opt_id, best, best_score, root_score, pareto_front(evaluated), int(counts[1] or 0),
                              int(counts[0]))  # fmt: skip
