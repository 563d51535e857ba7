"""The lineage of stored structures: who derived what from what, with scores and the changes."""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape
from rich.tree import Tree

from automem.store.db import Store


def lineage_rows(store: Store) -> list[dict[str, Any]]:
    """One row per stored structure, oldest first, with its scores and what loop 1 decided on it."""
    scores = store.structure_scores()
    decisions = {
        sid: {
            "status": row["status"],
            "reason": row["reason"],
            "changes": json.loads(row["changes"] or "[]"),
            "parent_mean": row["parent_mean"],
            "mean": row["candidate_mean"],
            "se": row["candidate_se"],
            "iteration": row["iteration"],
        }  # fmt: skip
        for sid, row in store.candidate_decisions().items()
    }
    out = []
    for s in store.structures():
        episodes, mean = scores.get(s["id"], (0, None))
        out.append(
            {
                "id": s["id"],
                "name": s["name"],
                "game": s["game"],
                "parent": s["parent"],
                "author": s["author"],
                "created_at": s["created_at"],
                "episodes": episodes,
                "mean_progression": mean,
                "decision": decisions.get(s["id"]),
            }  # fmt: skip
        )
    return out


#: how a loop-1 decision reads in the lineage tree
STATUS_COLOUR = {"accepted": "green", "tied": "yellow", "rejected": "red", "raced_out": "red"}


def render_tree(rows: list[dict[str, Any]]) -> Tree:
    ids = {r["id"] for r in rows}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for r in rows:
        children.setdefault(r["parent"] if r["parent"] in ids else None, []).append(r)
    tree = Tree("[bold]structures[/]")

    def add(node: Tree, row: dict[str, Any]) -> None:
        label = f"[bold]{escape(row['name'])}[/] {row['id']} [dim]{escape(row['author'] or '')}[/]"
        if row["mean_progression"] is not None:
            label += f" · progression {row['mean_progression']:.2f} over {row['episodes']} episodes"
        decision = row["decision"]
        if decision:
            colour = STATUS_COLOUR.get(decision["status"], "")
            label += f" · [{colour}]{decision['status']}[/]" if colour else f" · {decision['status']}"
            if decision["reason"]:
                label += f" [dim]({escape(decision['reason'])})[/]"
        branch = node.add(label)
        for change in (decision or {}).get("changes", []):
            branch.add(f"[dim]{escape(change)}[/]")
        for child in children.get(row["id"], []):
            add(branch, child)

    for root in children.get(None, []):
        add(tree, root)
    return tree
