"""Mining: pick the agent's own memory decisions worth reinforcing, from stored episodes.

Candidates are model turns, verbatim from ``llm_calls``: every LOG turn that issued a memory
operation, and every memory look-up of a PLAN turn (its game action is never a candidate). Each is
scored with signals from the store, optionally rated by an LLM judge, cleaned, split by episode and
written as chat-format JSONL with the exact prompt the model saw. Every decision is kept with its
reason (``decisions.jsonl`` beside the dataset, and the ``datasets`` row).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from automem.memory.ops import READ_VERBS, added_lines_present
from automem.optimize.digest import structure_info
from automem.store.db import Store, now

_READS = frozenset(v.value for v in READ_VERBS)


class MiningError(ValueError):
    """Bad mining input (no such run, too few examples, a dataset name taken)."""


@dataclass
class MineConfig:
    runs: list[str]
    out: str
    #: progress (reward, achievement, progression) within this many steps counts for a decision
    k: int = 10
    #: a candidate is kept when its score reaches this (see ``score``)
    min_score: float = 2.0
    min_examples: int = 1
    val_fraction: float = 0.2
    #: commands this similar (difflib ratio) to a kept one of the same verb and file are dropped
    near_duplicate: float = 0.92
    judge: str | None = None
    judge_weight: float = 1.0


@dataclass
class Candidate:
    call_id: int
    episode_id: int
    run: str
    step: int
    phase: str
    turn: int
    command: str
    verb: str
    path: str
    ok: bool
    signals: dict[str, bool] = field(default_factory=dict)
    score: float = 0.0
    judge: int | None = None
    kept: bool = False
    reason: str = ""
    split: str = ""


# -- signals -----------------------------------------------------------------------------------
#: weight of each signal in the score; the reason of every decision lists the ones that held
WEIGHTS = {
    "op_ok": 1.0,  # the operation succeeded
    "read_later": 1.0,  # a write whose file was read (or shown pinned) afterwards
    "progress_after": 1.0,  # reward, an achievement or progression within k steps
    "not_redundant": 1.0,  # a write that added something the file did not hold
    "productive_read": 1.0,  # a look-up in a step whose action was rewarded or progressed
}


def episodes_of_runs(store: Store, runs: list[str]) -> list[tuple[int, str]]:
    out = []
    for name in runs:
        row = store.run_by_name(name)
        if row is None:
            raise MiningError(f"no run named {name!r} in {store.path}")
        out += [(e["id"], name) for e in store.episodes(row["id"])]
    if not out:
        raise MiningError(f"the runs {', '.join(runs)} hold no episodes")
    return out


def _pinned(store: Store, episode_id: int) -> frozenset[str]:
    row = store.db.execute("SELECT structure_id FROM episodes WHERE id = ?", [episode_id]).fetchone()
    return structure_info(store, row[0] if row else None).pinned


def clean_command(response: str) -> str:
    """The model's own words for one operation: its first line, cut where it says DONE."""
    first = response.strip().split("\n", 1)[0].strip()
    return first.split(" DONE", 1)[0].strip() if first != "DONE" else ""


def candidates_of(store: Store, episode_id: int, run: str, k: int) -> list[Candidate]:
    """Every memory-operation turn of one episode with its signals."""
    steps = store.db.execute(
        "SELECT step, reward, progression, achievements FROM steps WHERE episode_id = ? ORDER BY step", [episode_id]
    ).fetchall()
    # a step "progressed" when it was rewarded, unlocked something or raised progression
    progressed: set[int] = set()
    last_prog, last_ach = 0.0, 0
    for step, reward, progression, achievements in steps:
        count = len(json.loads(achievements or "[]"))
        if reward > 0 or progression > last_prog or count > last_ach:
            progressed.add(step)
        last_prog, last_ach = progression, count
    rows = store.db.execute(
        "SELECT c.id, c.step, c.phase, c.turn, c.response, c.valid, o.verb, o.path, o.args, o.ok, "
        "(SELECT text FROM texts WHERE id = o.before_id), o.before_id = o.after_id "
        "FROM llm_calls c JOIN memory_ops o ON o.llm_call_id = c.id "
        "WHERE c.episode_id = ? ORDER BY c.id",
        [episode_id],
    ).fetchall()
    marks = ",".join("?" * len(_READS))
    reads = store.db.execute(
        f"SELECT step, path FROM memory_ops WHERE episode_id = ? AND ok = 1 AND verb IN ({marks})",
        [episode_id, *sorted(_READS)],
    ).fetchall()
    pinned = _pinned(store, episode_id)
    out = []
    for call_id, step, phase, turn, response, valid, verb, path, args, ok, before, unchanged in rows:
        command = clean_command(response)
        if not valid or not command:
            continue
        write = verb not in _READS
        signals = {"op_ok": bool(ok)}
        if write:
            signals["read_later"] = path in pinned or any(s >= step and p in (path, "*") for s, p in reads)
            signals["not_redundant"] = (
                bool(ok) and not unchanged and not added_lines_present(verb, json.loads(args or "{}"), before)
            )
            signals["progress_after"] = any(step <= s <= step + k for s in progressed)
        else:
            signals["productive_read"] = step in progressed
            signals["progress_after"] = any(step <= s <= step + k for s in progressed)
        score = sum(WEIGHTS[name] for name, held in signals.items() if held)
        out.append(
            Candidate(call_id, episode_id, run, step, phase, turn, command, verb, path, bool(ok), signals, score)
        )
    return out


# -- judge -------------------------------------------------------------------------------------
JUDGE_RUBRIC = """Rate one memory operation of a game-playing agent from 1 (useless or harmful) to 5 (clearly
useful later): does it record or look up something specific and reusable (where resources are, what
worked, what to avoid, the current goal) rather than restate the screen or repeat a note?
Answer with one digit."""


def judge_candidates(engine: Any, store: Store, items: list[Candidate]) -> None:
    """Ask an engine (any) to rate each candidate 1-5; a grammar holds the answer to one digit."""
    grammar = "root ::= [1-5]" if engine.supports_grammar else None
    for item in items:
        observation = store.db.execute(
            "SELECT observation FROM steps WHERE episode_id = ? AND step = ?", [item.episode_id, item.step]
        ).fetchone()
        messages = [
            {"role": "system", "content": JUDGE_RUBRIC},
            {
                "role": "user",
                "content": f"Observation:\n{(observation or [''])[0][:1500]}\n\nOperation: {item.command}",
            },
        ]
        try:
            text = engine.complete(messages, grammar=grammar, max_tokens=2, temperature=0.0, seed=item.call_id).text
        except Exception as exc:  # a failing judge leaves the signals to decide
            item.reason = f"judge failed: {exc}"
            continue
        digit = next((c for c in text if c in "12345"), None)
        item.judge = int(digit) if digit else None


# -- clean-up, split, write --------------------------------------------------------------------
def _split_of(episode_id: int, fraction: float) -> str:
    # by episode, deterministic: every turn of one episode lands on the same side
    h = int(hashlib.sha1(str(episode_id).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < fraction else "train"


def select(items: list[Candidate], config: MineConfig) -> list[Candidate]:
    """Decide every candidate (kept or dropped, with the reason); returns the kept ones."""
    kept_by_key: dict[tuple[str, str], list[str]] = {}
    kept: list[Candidate] = []
    for item in sorted(items, key=lambda c: (-c.score - (c.judge or 0) * config.judge_weight / 5, c.call_id)):
        held = [name for name, ok in item.signals.items() if ok]
        total = item.score + ((item.judge or 0) - 3) * config.judge_weight / 2 if item.judge else item.score
        if not item.ok:
            item.reason = "dropped: the operation was refused"
            continue
        if total < config.min_score:
            item.reason = f"dropped: score {total:.1f} < {config.min_score} (held: {', '.join(held) or 'none'})"
            continue
        key = (item.verb, item.path)
        normal = " ".join(item.command.lower().split())
        similar = next(
            (
                o
                for o in kept_by_key.get(key, [])
                if difflib.SequenceMatcher(None, normal, o).ratio() >= config.near_duplicate
            ),
            None,
        )
        if similar is not None:
            item.reason = f"dropped: near-duplicate of a kept {item.verb} {item.path}"
            continue
        kept_by_key.setdefault(key, []).append(normal)
        item.kept = True
        item.reason = f"kept: score {total:.1f} ({', '.join(held)})" + (f", judge {item.judge}/5" if item.judge else "")
        kept.append(item)
    return kept


def _example(store: Store, item: Candidate) -> dict[str, Any]:
    prompt = store.call_prompt(item.call_id)
    return {
        # the exact messages the model saw, then the command it gave: one memory operation, so a LOG
        # answer ends before DONE and a PLAN answer never holds the game action
        "messages": [*prompt, {"role": "assistant", "content": item.command}],
        "meta": {
            "call_id": item.call_id,
            "episode_id": item.episode_id,
            "run": item.run,
            "step": item.step,
            "phase": item.phase,
            "verb": item.verb,
            "path": item.path,
            "score": item.score,
        },  # fmt: skip
    }


@dataclass
class MineResult:
    dataset_id: int
    folder: Path
    candidates: int
    kept: int
    train: int
    val: int


def mine(
    store: Store, config: MineConfig, *, judge: Any = None, on_event: Callable[[str], None] | None = None
) -> MineResult:
    say = on_event or (lambda _m: None)
    if store.db.execute("SELECT 1 FROM datasets WHERE name = ?", [config.out]).fetchone():
        raise MiningError(f"dataset {config.out!r} exists; pick another --out")
    items: list[Candidate] = []
    for episode_id, run in episodes_of_runs(store, config.runs):
        items += candidates_of(store, episode_id, run, config.k)
    say(f"{len(items)} candidate memory decisions in {len(config.runs)} run(s)")
    if judge is not None:
        judge_candidates(judge, store, items)
        say(f"judged {sum(i.judge is not None for i in items)} with {config.judge}")
    kept = select(items, config)
    if len(kept) < config.min_examples:
        raise MiningError(
            f"only {len(kept)} examples pass (of {len(items)} candidates); need --min-examples {config.min_examples}"
        )
    folder = store.path.parent / "datasets" / config.out
    folder.mkdir(parents=True, exist_ok=True)
    counts = {"train": 0, "val": 0}
    with (
        (folder / "train.jsonl").open("w", encoding="utf-8") as train,
        (folder / "val.jsonl").open("w", encoding="utf-8") as val,
    ):
        for item in sorted(kept, key=lambda c: c.call_id):
            item.split = _split_of(item.episode_id, config.val_fraction)
            counts[item.split] += 1
            (val if item.split == "val" else train).write(json.dumps(_example(store, item), ensure_ascii=False) + "\n")
    with (folder / "decisions.jsonl").open("w", encoding="utf-8") as out:
        for item in sorted(items, key=lambda c: c.call_id):
            out.write(json.dumps(asdict(item), ensure_ascii=False) + "\n")
    selection = {"config": asdict(config), "weights": WEIGHTS, "judge_rubric": JUDGE_RUBRIC if judge else None}
    (folder / "selection.json").write_text(json.dumps(selection, indent=2), encoding="utf-8")
    dataset_id = int(
        store.db["datasets"]
        .insert(
            {
                "name": config.out,
                "runs": json.dumps(config.runs),
                "selection": json.dumps(selection),
                "candidates": len(items),
                "kept": len(kept),
                "train": counts["train"],
                "val": counts["val"],
                "folder": str(folder),
                "created_at": now(),
            }  # fmt: skip
        )
        .last_pk  # type: ignore[arg-type]
    )
    say(f"kept {len(kept)}: {counts['train']} train, {counts['val']} validation, in {folder}")
    return MineResult(dataset_id, folder, len(items), len(kept), counts["train"], counts["val"])
