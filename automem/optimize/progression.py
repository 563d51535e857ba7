"""Progression per iteration along a loop-1 lineage: the series the structures screen plots and
``automem structures progression`` prints.

Each iteration has the parent the critic revised (its mean progression ± standard error over the
fixed seeds), its candidates (mean ± standard error, and what the gate decided) and the best
structure kept so far (the root or an accepted candidate).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from automem.errors import AutomemError
from automem.store.db import Store

#: the gate's verdicts that come with a candidate's score (invalid and failed proposals have none)
SCORED = ("accepted", "rejected", "tied", "raced_out")


class ProgressionError(AutomemError):
    """No optimization of that name, or none stored yet."""


@dataclass(frozen=True)
class CandidatePoint:
    iteration: int
    candidate: int
    structure_id: str | None
    parent_id: str
    status: str
    mean: float | None
    se: float | None
    #: the candidate index this one is the critic's second attempt at (None: a first attempt)
    retry_of: int | None
    reason: str | None


@dataclass(frozen=True)
class IterationPoint:
    iteration: int
    parent_id: str
    parent_mean: float | None
    parent_se: float | None
    #: the best structure kept once this iteration was judged (the root or an accepted candidate)
    best_id: str
    best_mean: float | None
    best_se: float | None
    accepted: int
    rejected: int


@dataclass(frozen=True)
class Progression:
    optimization: str
    game: str
    status: str
    root_id: str
    iterations: list[IterationPoint]
    candidates: list[CandidatePoint]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def scored(self) -> list[CandidatePoint]:
        """The candidates with a score to plot."""
        return [c for c in self.candidates if c.mean is not None and c.status in SCORED]


def progression(store: Store, optimization: str | None = None) -> Progression:
    """The named optimization's progression (default: the newest one)."""
    rows = store.optimizations()
    if not rows:
        raise ProgressionError("no optimization stored yet: automem optimize GAME")
    if optimization is None:
        opt = rows[-1]
    else:
        found = [r for r in rows if r["name"] == optimization]
        if not found:
            raise ProgressionError(f"no optimization named {optimization!r}")
        opt = found[0]
    candidates: list[CandidatePoint] = []
    parents: dict[int, tuple[str, float | None, float | None]] = {}
    for r in store.iteration_rows(int(opt["id"])):
        parents.setdefault(r["iteration"], (r["parent_id"], r["parent_mean"], r["parent_se"]))
        candidates.append(
            CandidatePoint(
                iteration=r["iteration"],
                candidate=r["candidate"],
                structure_id=r["candidate_id"],
                parent_id=r["parent_id"],
                status=r["status"],
                mean=r["candidate_mean"],
                se=r["candidate_se"],
                retry_of=r["retry_of"],
                reason=r["reason"],
            )  # fmt: skip
        )
    iterations: list[IterationPoint] = []
    root = opt["root_structure_id"]
    # the root's score is the first parent's (iteration 0 always revises the root)
    first = parents.get(min(parents)) if parents else None
    best: tuple[str, float | None, float | None] = (
        (root, first[1], first[2]) if first and first[0] == root else (root, None, None)
    )
    for iteration in sorted(parents):
        mine = [c for c in candidates if c.iteration == iteration]
        for c in mine:
            if c.status == "accepted" and c.mean is not None and (best[1] is None or c.mean > best[1]):
                best = (c.structure_id or "", c.mean, c.se)
        parent_id, parent_mean, parent_se = parents[iteration]
        iterations.append(
            IterationPoint(
                iteration=iteration,
                parent_id=parent_id,
                parent_mean=parent_mean,
                parent_se=parent_se,
                best_id=best[0],
                best_mean=best[1],
                best_se=best[2],
                accepted=sum(c.status == "accepted" for c in mine),
                rejected=sum(c.status in ("rejected", "tied", "raced_out") for c in mine),
            )  # fmt: skip
        )
    return Progression(opt["name"], opt["game"] or "", opt["status"] or "", root, iterations, candidates)


def optimization_of_structure(store: Store, structure_id: str) -> str | None:
    """The newest optimization a structure took part in, or None."""
    names = store.optimizations_of_structure(structure_id)
    return names[0] if names else None


def _num(value: float | None, se: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if se is None else f"{value:.2f}±{se:.2f}"


def progression_table(p: Progression) -> list[dict[str, str]]:
    """The progression as table rows (one per candidate), the CLI's text form of the plot: the
    parent's, the candidate's and the best kept structure's mean ± standard error."""
    best = {it.iteration: it for it in p.iterations}
    out = []
    for c in p.candidates:
        it = best[c.iteration]
        out.append(
            {
                "iter.": str(c.iteration),
                "cand.": str(c.candidate) + (f" (retry {c.retry_of})" if c.retry_of is not None else ""),
                "structure": (c.structure_id or "-")[:8],
                "status": c.status,
                "parent": _num(it.parent_mean, it.parent_se),
                "candidate": _num(c.mean, c.se),
                "gain": f"{c.mean - it.parent_mean:+.2f}" if c.mean is not None and it.parent_mean is not None else "-",
                "best kept": _num(it.best_mean, it.best_se),
            }  # fmt: skip
        )
    return out
