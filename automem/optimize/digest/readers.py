"""Reading an episode from the store into the small rows the digest works on.

Everything goes through the store's trajectory readers (automem.store.trajectories): whole texts
(prompts, file contents) are never loaded per call, sizes come from ``length()`` inside SQLite.
The stored structure is read as plain YAML, so a digest of an old run does not fail on a schema
change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

import yaml

from automem.store.db import Store


class Step(NamedTuple):
    step: int
    action: str
    source: str
    reward: float
    progression: float
    unlocked: tuple[str, ...]
    invalid: int
    tokens: int
    calls: int
    unchanged: bool


class Op(NamedTuple):
    id: int
    step: int
    verb: str
    path: str
    args: str
    ok: bool
    message_chars: int
    message: str | None  # only for refused ops and '*' reads: the rest never need it
    before_id: str | None
    after_id: str | None
    after_chars: int | None
    source: str  # model | human | helper


@dataclass
class StructureInfo:
    files: list[str]
    pinned: frozenset[str]
    log_budget: int | None


def structure_info(
    store: Store, structure_id: str | None, cache: dict[str | None, StructureInfo] | None = None
) -> StructureInfo:
    """The files, pinned files and LOG budget of a stored structure.

    The stored YAML is read as plain data: a digest of an old run must not fail on a schema change."""
    cache = {} if cache is None else cache
    if structure_id in cache:
        return cache[structure_id]
    text = store.structure_yaml(structure_id)
    data: Any = {}
    if text:
        try:
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError:
            data = {}
    data = data if isinstance(data, dict) else {}
    files = [f for f in data.get("files") or [] if isinstance(f, dict) and f.get("path")]
    log = next((p for p in data.get("phases") or [] if isinstance(p, dict) and p.get("kind") == "LOG"), None)
    info = StructureInfo(
        files=[str(f["path"]) for f in files],
        pinned=frozenset(str(f["path"]) for f in files if f.get("pinned")),
        log_budget=int(log.get("budget", 2)) if log else None,
    )
    cache[structure_id] = info
    return info


def load_steps(store: Store, episode_id: int) -> list[Step]:
    rows = store.step_rows_for_digest(episode_id)
    out: list[Step] = []
    last_json, seen = "[]", set()
    for step, action, source, reward, progression, achievements, invalid, tokens, calls, same in rows:
        unlocked: tuple[str, ...] = ()
        if (achievements or "[]") != last_json:  # parse only when the list changed
            last_json = achievements or "[]"
            names = json.loads(last_json)
            unlocked = tuple(a for a in names if a not in seen)
            seen.update(names)
        out.append(Step(step, action or "", source or "", float(reward or 0.0), float(progression or 0.0),
                        unlocked, int(invalid or 0), int(tokens), int(calls), bool(same)))  # fmt: skip
    return out


def load_ops(store: Store, episode_id: int) -> list[Op]:
    rows = store.memory_op_rows_for_digest(episode_id)
    return [Op(r[0], r[1], r[2] or "", r[3] or "", r[4] or "{}", bool(r[5]), int(r[6] or 0), r[7], r[8], r[9], r[10],
               r[11] or "model") for r in rows]  # fmt: skip


def log_budget_exhausted(store: Store, episode_id: int, budget: int | None) -> int:
    """Steps whose LOG phase used every turn of its budget without answering DONE."""
    if not budget:
        return 0
    turns: dict[int, list[str]] = {}
    for call in store.calls_of(episode_id, phase="LOG"):
        turns.setdefault(call["step"], []).append(call["parsed"] or "")
    return sum(1 for parsed in turns.values() if len(parsed) >= budget and parsed[-1].strip() != "DONE")
