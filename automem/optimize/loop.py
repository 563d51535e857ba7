"""Loop 1: evaluate, digest, ask the critic, evaluate the candidates on the same seeds, keep what
beats its parent. Every step is recorded, so a rerun under the same name resumes.

Beyond the paper's single greedy line, every evaluated structure that no other beats on every
seed stays on a per-seed Pareto front, and ``parent="front"`` lets later iterations start from any
member of it (round robin by mean progression) rather than only from the best so far.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from automem.errors import AutomemError
from automem.memory.structure import Structure
from automem.optimize.changes import structural_changes, wording_changes
from automem.optimize.critics import Critic, HeuristicCritic, Proposal
from automem.optimize.gate import RACED_OUT, REJECTED, TIED, Decision, Gate
from automem.runs.eval import EvalConfig, plan_eval, run_eval
from automem.runs.metrics import mean_se
from automem.store.db import Store, now


class OptimizeError(AutomemError):
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
    gate: Gate = field(default_factory=Gate)
    #: a candidate that did not win earns the critic one more attempt, shown what it changed
    #: and how each seed went (the paper's meta loop); the retry is a candidate of its own
    retry: bool = True

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

    def dominates(self, other: Score) -> bool:
        keys = set(self.per_seed) | set(other.per_seed)
        mine = [self.per_seed.get(k, 0.0) for k in keys]
        theirs = [other.per_seed.get(k, 0.0) for k in keys]
        if not all(a >= b for a, b in zip(mine, theirs, strict=True)):
            return False
        # equal on every seed: the cheaper of two twins dominates (the dearer one leaves the front)
        return any(a > b for a, b in zip(mine, theirs, strict=True)) or self.tokens_per_step < other.tokens_per_step


@dataclass
class OptimizeResult:
    optimization_id: int
    best: Structure
    best_score: Score
    root_score: Score
    front: list[tuple[Structure, Score]]
    accepted: int
    candidates: int
    #: candidates racing stopped after their first heat, and the play it spared (estimated from
    #: the heats' own seconds per episode)
    raced_out: int = 0
    saved_seconds: float = 0.0


def score_run(store: Store, run_id: int) -> Score:
    rows = store.episode_scores(run_id)
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
        row = self.store.optimization_by_name(c.name)
        fingerprint = c.fingerprint()
        if row is not None:
            stored = json.loads(row["config"])["fingerprint"]
            if stored != fingerprint:
                diff = ", ".join(k for k in fingerprint if stored.get(k) != fingerprint[k])
                raise OptimizeError(f"optimization {c.name!r} exists with other settings ({diff}); pick another name")
            self.store.set_optimization_status(row["id"], "running")
            return int(row["id"])
        self.store.save_structure(c.root)
        return self.store.insert_optimization(
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
                        "gate": c.gate.settings(),
                        "retry": c.retry,
                    }
                ),
            }  # fmt: skip
        )

    def _rows(self, opt_id: int, iteration: int) -> list[dict[str, Any]]:
        return self.store.iteration_rows(opt_id, iteration)

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, structure: Structure, run_name: str, seeds: list[int] | None = None) -> Score:
        """The structure's score on every seed (kept), or on ``seeds`` only: a race's first heat, not
        kept as its score; playing every seed later continues the same run."""
        c = self.config
        self.store.save_structure(structure)
        self.structures[structure.id] = structure
        if structure.id in self.scores:
            return self.scores[structure.id]
        eval_config = EvalConfig(
            game=c.game, tasks=list(c.tasks), seeds=list(seeds or c.seeds), structure=structure,
            engine_spec=c.agent_engine, engine_options=dict(c.agent_engine_options), workers=c.workers,
            max_steps=c.max_steps, temperature=c.temperature, run_name=run_name,
        )  # fmt: skip
        plan = plan_eval(self.store, eval_config)
        if plan.jobs:
            part = f" (first heat: seeds {seeds[0]}-{seeds[-1]})" if seeds else ""
            self.say(f"evaluating {structure.name} {structure.id} on {len(plan.jobs)} episodes ({run_name}){part}")
        run_eval(self.store, eval_config, plan)
        score = score_run(self.store, plan.run_id)
        if seeds is None:
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
            self.store.set_optimization_status(opt_id, status, finished=True)
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
        return self.store.accepted_candidates(self.config.name)

    def _iteration(self, opt_id: int, iteration: int) -> None:
        rows = self._rows(opt_id, iteration)
        if rows and all(r["status"] != "pending" for r in rows) and not self._owed_retries(rows):
            self.say(f"iteration {iteration}: already done")
            return
        if not rows:
            rows = self._propose(opt_id, iteration)
        # judge in candidate order; a rejection adds its retry, judged in turn (resumable: each row
        # is recorded before it is evaluated)
        while True:
            pending = [r for r in rows if r["status"] == "pending"]
            if pending:
                self._judge(pending[0])
            elif owed := self._owed_retries(rows):
                self._retry(opt_id, iteration, owed[0], rows)
            else:
                return
            rows = self._rows(opt_id, iteration)

    def _owed_retries(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """First attempts that did not win (rejected, tied or raced out) whose one retry has not been
        proposed yet."""
        if not self.config.retry:
            return []
        retried = {r["retry_of"] for r in rows if r["retry_of"] is not None}
        return [
            r for r in rows
            # judged by this gate (an optimization recorded before it is not given retries on resume)
            if r["status"] in (REJECTED, TIED, RACED_OUT) and r["gate"] is not None
            and r["retry_of"] is None and r["candidate"] not in retried
        ]  # fmt: skip

    def _reload(self, opt_id: int) -> None:
        """A resumed optimization: the structures and scores its finished candidates earned (not
        those racing stopped: they did not play every seed). Every structure already proposed is
        known, scored or not, so a resumed critic does not propose a raced-out one again."""
        for row in self.store.iteration_rows(opt_id):
            if row["candidate_id"] is not None:
                self._structure(row["candidate_id"])
            if row["candidate_run_id"] is None:
                continue
            if row["status"] != RACED_OUT:
                self._load(row["candidate_id"], row["candidate_run_id"])
            self._load(row["parent_id"], row["parent_run_id"])

    def _load(self, structure_id: str, run_id: int) -> None:
        self._structure(structure_id)
        if structure_id not in self.scores:
            self.scores[structure_id] = score_run(self.store, run_id)

    def _prepare_critic(self, parent_score: Score) -> str:
        """The digest of the parent's run, as text for the critic (and as signals for the heuristic one)."""
        from automem.optimize.digest import build_digest

        digest = build_digest(self.store, parent_score.run_id)
        if isinstance(self.critic, HeuristicCritic):
            from automem.optimize.signals import signals_from_digest

            self.critic.signals = signals_from_digest(digest)
        if hasattr(self.critic, "store"):
            self.critic.store = self.store  # an LLM critic's tools read any step or file from it
        return digest.to_text(budget_chars=self.config.digest_chars)

    def _propose(self, opt_id: int, iteration: int) -> list[dict[str, Any]]:
        c = self.config
        parent = self._pick_parent(iteration)
        parent_score = self.scores[parent.id]
        digest_text = self._prepare_critic(parent_score)
        self.say(f"iteration {iteration}: {self.critic.label} revises {parent.name} {parent.id} "
                 f"(progression {parent_score.mean:.2f})")  # fmt: skip
        proposals = self.critic.propose(parent, digest_text, c.candidates, set(self.structures))
        if not proposals:
            proposals = [Proposal(None, "", errors=["the critic had no applicable revision"])]
        for index, proposal in enumerate(proposals):
            self._record_proposal(opt_id, iteration, index, parent, parent_score, digest_text, proposal)
        return self._rows(opt_id, iteration)

    def _retry(self, opt_id: int, iteration: int, rejected: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        """One more attempt for the critic, shown the rejected candidate's changes and every seed's
        result beside its parent's."""
        parent = self._structure(rejected["parent_id"])
        self._load(rejected["parent_id"], rejected["parent_run_id"])
        parent_score = self.scores[parent.id]
        digest_text = self._prepare_critic(parent_score)
        feedback = rejection_feedback(rejected)
        self.say(f"  candidate {rejected['candidate']} was {rejected['status']}: the critic tries once more")
        proposals = self.critic.propose(parent, f"{digest_text}\n\n{feedback}", 1, set(self.structures))
        proposal = proposals[0] if proposals else Proposal(None, "", errors=["the critic had no other revision"])
        index = max(r["candidate"] for r in rows) + 1
        self._record_proposal(
            opt_id, iteration, index, parent, parent_score, digest_text, proposal, retry_of=rejected["candidate"],
            feedback=feedback,
        )  # fmt: skip

    def _record_proposal(
        self,
        opt_id: int,
        iteration: int,
        index: int,
        parent: Structure,
        parent_score: Score,
        digest_text: str,
        proposal: Proposal,
        *,
        retry_of: int | None = None,
        feedback: str | None = None,
    ) -> None:
        child = proposal.structure
        if child is not None:
            self.store.save_structure(child)
            self.structures[child.id] = child
        self.store.insert_iteration(
            {
                "optimization_id": opt_id,
                "iteration": iteration,
                "candidate": index,
                "parent_id": parent.id,
                "candidate_id": child.id if child else None,
                "critic": self.critic.name,
                "digest": digest_text if feedback is None else f"{digest_text}\n\n{feedback}",
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
                "retry_of": retry_of,
                "created_at": now(),
                "finished_at": None if child else now(),
            }  # fmt: skip
        )
        if child is None:
            self.say(f"  candidate {index}: refused: {'; '.join(proposal.errors)}")

    def _structure(self, structure_id: str) -> Structure:
        if structure_id not in self.structures:
            self.structures[structure_id] = self.store.load_structure(structure_id)
        return self.structures[structure_id]

    def _judge(self, row: dict[str, Any]) -> None:
        c = self.config
        child = self._structure(row["candidate_id"])
        self._load(row["parent_id"], row["parent_run_id"])
        parent_score = self.scores[row["parent_id"]]
        changes = json.loads(row["changes"] or "[]")
        self.say(f"  candidate {row['candidate']} {child.id}: {'; '.join(changes)}")
        run_name = f"{c.name}/i{row['iteration']}c{row['candidate']}-{child.id[:8]}"
        decision: Decision | None = None
        heat = c.gate.race_seeds(c.seeds) if child.id not in self.scores else None
        if heat is not None:
            first = self.evaluate(child, run_name, seeds=heat)
            remaining = (len(c.seeds) - len(heat)) * len(c.tasks)
            decision = c.gate.hopeless(first.per_seed, parent_score.per_seed, remaining)
            if decision is not None:
                saved = remaining * self._seconds_per_episode(first.run_id)
                decision = replace(decision, extra={"heat_seeds": heat, "saved_seconds": round(saved, 1)})
                score = first
        if decision is None:
            score = self.evaluate(child, run_name)
            decision = c.gate.decide(
                score.per_seed, parent_score.per_seed, candidate_tokens=score.tokens_per_step,
                parent_tokens=parent_score.tokens_per_step,
            )  # fmt: skip
            if heat is not None:
                decision = replace(decision, extra={"heat_seeds": heat, "saved_seconds": 0.0})
        keys = sorted(set(score.per_seed) | set(parent_score.per_seed))
        per_seed = {k: [parent_score.per_seed.get(k), score.per_seed.get(k)] for k in keys}
        self.store.update_iteration(
            row["id"],
            {
                "status": decision.status,
                "reason": decision.reason,
                "gate": json.dumps(decision.record()),
                "candidate_run_id": score.run_id,
                "candidate_mean": score.mean,
                "candidate_se": score.se,
                "candidate_tokens_per_step": score.tokens_per_step,
                "per_seed": json.dumps(per_seed),
                "finished_at": now(),
            },  # fmt: skip
        )
        self.say(f"  {decision.status.upper() if decision.accepted else decision.status}: {decision.reason}")

    def _seconds_per_episode(self, run_id: int) -> float:
        """Mean wall time of a run's finished episodes (what racing saves per episode not played)."""
        spans = [
            (datetime.fromisoformat(e["finished_at"]) - datetime.fromisoformat(e["started_at"])).total_seconds()
            for e in self.store.episodes(run_id)
            if e["status"] == "finished" and e["started_at"] and e["finished_at"]
        ]
        return sum(spans) / len(spans) if spans else 0.0

    def _result(self, opt_id: int, root_score: Score) -> OptimizeResult:
        evaluated = self._evaluated()
        accepted = self._accepted_ids() | {self.config.root.id}
        best, best_score = max(
            ((s, sc) for s, sc in evaluated if s.id in accepted),
            key=lambda item: (item[1].mean, -item[1].tokens_per_step),
        )
        rows = [(r["status"], r["gate"]) for r in self.store.iteration_rows(opt_id)]
        saved = sum(json.loads(gate).get("saved_seconds", 0.0) for _, gate in rows if gate)
        return OptimizeResult(
            opt_id, best, best_score, root_score, pareto_front(evaluated),
            accepted=sum(status == "accepted" for status, _ in rows), candidates=len(rows),
            raced_out=sum(status == RACED_OUT for status, _ in rows), saved_seconds=saved,
        )  # fmt: skip


def rejection_feedback(row: dict[str, Any]) -> str:
    """What the critic is shown about its rejected candidate before its one more attempt."""
    changes = json.loads(row["changes"] or "[]")
    per_seed = json.loads(row["per_seed"] or "{}")
    lines = [
        "## Your previous attempt on this structure was not kept",
        f"Its changes: {'; '.join(changes) or '(none recorded)'}",
        f"Verdict ({row['status']}): {row['reason']}",
        "Progression per seed (parent -> candidate):",
        *(f"- {key}: {_num(pair[0])} -> {_num(pair[1])}" for key, pair in per_seed.items()),
        "Propose a different revision: one that addresses why this one did not help, not the same again.",
    ]
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "not played" if value is None else f"{value:.2f}"
