"""Mining: pick the agent's own memory decisions worth reinforcing, from stored episodes.

Candidates are model turns, verbatim from ``llm_calls``: every LOG turn that issued a memory
operation, every LOG turn that answered only ``DONE`` (the decision not to write is half of
managing memory), and every memory look-up of a PLAN turn (its game action is never a candidate).
A redundant write (it added nothing its file did not hold) is also offered relabelled: the same
prompt with ``DONE`` as the target. Each is scored with signals from the store, optionally rated
by an LLM judge, cleaned, balanced (a DONE share), split by episode and written as chat-format
JSONL with the exact prompt the model saw. Every decision is kept with its reason
(``decisions.jsonl`` beside the dataset, and the ``datasets`` row), and the dataset records the
task/seed pairs it came from, so evaluations can be held out from them.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from automem.errors import AutomemError
from automem.memory.ops import READ_VERBS, added_lines_present, empty_lookup
from automem.optimize.digest import structure_info
from automem.runs.memory_metrics import is_done_answer
from automem.store.db import Store

_READS = frozenset(v.value for v in READ_VERBS)


class MiningError(AutomemError, ValueError):
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
    #: at most this share of the kept examples answer DONE (the lowest-scoring DONEs go); None: no cap
    done_share: float | None = 0.5


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
    #: a redundant write offered with DONE as its target (``command`` is then "DONE")
    relabelled: bool = False


# -- signals -----------------------------------------------------------------------------------
#: weight of each signal in the score; the reason of every decision lists the ones that held
WEIGHTS = {
    "op_ok": 1.0,  # the operation succeeded
    "read_later": 1.0,  # a write whose file was read (or shown pinned) afterwards
    "progress_after": 1.0,  # reward, an achievement or progression within k steps
    "not_redundant": 1.0,  # a write that added something the file did not hold
    "productive_read": 1.0,  # a look-up in a step whose action was rewarded or progressed
    "found_something": 0.0,  # a look-up that returned lines (shown, not scored: repeated empty ones are dropped)
    # DONE, the decision not to write
    "unchanged_observation": 1.0,  # the step showed what the previous one showed
    "no_event": 1.0,  # the last action earned nothing, unlocked nothing, moved progression not at all
    "no_catchup": 1.0,  # the next step wrote nothing either: nothing skipped had to be caught up
    "relabelled_redundant": 2.0,  # the write added nothing: DONE was the better answer
}
DONE = "DONE"


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
    return structure_info(store, store.episode_structure_id(episode_id)).pinned


def clean_command(response: str) -> str:
    """The model's own words for one operation: its first line, cut where it says DONE."""
    first = response.strip().split("\n", 1)[0].strip()
    return first.split(" DONE", 1)[0].strip() if first != "DONE" else ""


def candidates_of(store: Store, episode_id: int, run: str, k: int) -> list[Candidate]:
    """Every memory-operation turn of one episode with its signals."""
    steps = store.step_outcomes(episode_id)
    # a step "progressed" when it was rewarded, unlocked something or raised progression
    progressed: set[int] = set()
    last_prog, last_ach = 0.0, 0
    for step, reward, progression, achievements in steps:
        count = len(json.loads(achievements or "[]"))
        if reward > 0 or progression > last_prog or count > last_ach:
            progressed.add(step)
        last_prog, last_ach = progression, count
    rows = store.memory_op_turns(episode_id)
    # where and when files were read: a write read later was worth making
    reads = store.successful_op_paths(episode_id, sorted(_READS))
    pinned = _pinned(store, episode_id)
    out = []
    written: set[int] = set()  # steps with a successful write
    empty_seen: set[tuple[int, str, str, str]] = set()
    for call_id, step, phase, turn, response, valid, verb, path, args, ok, before, unchanged, message in rows:
        command = clean_command(response)
        if not valid or not command:
            continue
        write = verb not in _READS
        signals = {"op_ok": bool(ok)}
        progress = any(step <= s <= step + k for s in progressed)
        if write:
            if ok:
                written.add(step)
            signals["read_later"] = path in pinned or any(s >= step and p in (path, "*") for s, p in reads)
            signals["not_redundant"] = (
                bool(ok) and not unchanged and not added_lines_present(verb, json.loads(args or "{}"), before)
            )
            signals["progress_after"] = progress
        else:
            empty = empty_lookup(verb, bool(ok), message)
            signals["productive_read"] = step in progressed
            signals["found_something"] = bool(ok) and not empty
            signals["progress_after"] = progress
            key = (step, verb, path, args or "")
            if empty and key in empty_seen:
                signals["repeated_empty"] = True  # asked again in the same step, found nothing again
            if empty:
                empty_seen.add(key)
        score = sum(WEIGHTS.get(name, 0.0) for name, held in signals.items() if held)
        item = Candidate(call_id, episode_id, run, step, phase, turn, command, verb, path, bool(ok), signals, score)
        out.append(item)
        if write and phase == "LOG" and ok and not signals["not_redundant"]:
            relabel = {"op_ok": True, "relabelled_redundant": True, "progress_after": progress}
            out.append(
                Candidate(
                    call_id,
                    episode_id,
                    run,
                    step,
                    phase,
                    turn,
                    DONE,
                    DONE,
                    path,
                    True,
                    relabel,
                    sum(WEIGHTS[n] for n, held in relabel.items() if held),
                    relabelled=True,
                )  # fmt: skip
            )
    out += _done_candidates(store, episode_id, run, k, progressed, written)
    return sorted(out, key=lambda c: (c.call_id, c.relabelled))


def _done_candidates(
    store: Store, episode_id: int, run: str, k: int, progressed: set[int], written: set[int]
) -> list[Candidate]:
    """LOG turns that answered only DONE, with the signals of a good decision not to write."""
    observations = {s["step"]: s["observation"] for s in store.steps(episode_id)}
    out = []
    for call in store.calls_of(episode_id, phase="LOG"):
        if not call["valid"] or not is_done_answer(call["response"]):
            continue
        step = call["step"]
        signals = {
            "op_ok": True,
            "unchanged_observation": step > 0 and observations.get(step) == observations.get(step - 1),
            "no_event": step > 0 and (step - 1) not in progressed,
            "no_catchup": (step + 1) in observations and (step + 1) not in written,
            "progress_after": any(step <= s <= step + k for s in progressed),
        }
        score = sum(WEIGHTS[name] for name, held in signals.items() if held)
        out.append(
            Candidate(call["id"], episode_id, run, step, "LOG", call["turn"], DONE, DONE, "", True, signals, score)
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
        observation = store.step_observation(item.episode_id, item.step)
        messages = [
            {"role": "system", "content": JUDGE_RUBRIC},
            {
                "role": "user",
                "content": f"Observation:\n{(observation or '')[:1500]}\n\nOperation: {item.command}",
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
        if item.verb != DONE and item.signals.get("not_redundant") is False and item.phase == "LOG":
            item.reason = "dropped: a redundant write (offered relabelled, with DONE as the target)"
            continue
        if item.signals.get("repeated_empty"):
            item.reason = "dropped: a look-up that found nothing, repeated in the same step"
            continue
        if total < config.min_score:
            item.reason = f"dropped: score {total:.1f} < {config.min_score} (held: {', '.join(held) or 'none'})"
            continue
        label = "kept (relabelled to DONE)" if item.relabelled else "kept"
        if item.verb == DONE:
            item.kept = True
            item.reason = f"{label}: score {total:.1f} ({', '.join(held)})" + (
                f", judge {item.judge}/5" if item.judge else ""
            )
            kept.append(item)
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
    return balance_done(kept, config.done_share)


def balance_done(kept: list[Candidate], share: float | None) -> list[Candidate]:
    """Drop the lowest-scoring DONE examples until at most ``share`` of the kept ones are DONE."""
    if share is None:
        return kept
    # relabelled redundant writes go last: they are the corrections the base model most needs
    dones = sorted((c for c in kept if c.verb == DONE), key=lambda c: (c.relabelled, c.score, -c.call_id))
    others = len(kept) - len(dones)
    allowed = len(dones) if share >= 1 else int(share * others / (1 - share)) if share > 0 else 0
    for item in dones[: max(0, len(dones) - allowed)]:
        item.kept = False
        item.reason = f"dropped: over the DONE share {share:.2f} ({item.reason.split(': ', 1)[-1]})"
    return [c for c in kept if c.kept]


def done_share_of(kept: list[Candidate]) -> float:
    return sum(c.verb == DONE for c in kept) / len(kept) if kept else 0.0


def dataset_pairs(store: Store, runs: list[str], *, finished: bool = False) -> list[tuple[str, int]]:
    """The task/seed pairs of the runs' episodes (only the finished ones, with ``finished``): what
    an evaluation must leave out to be held out. Runs that do not exist contribute nothing."""
    pairs = set()
    for name in runs:
        row = store.run_by_name(name)
        if row is not None:
            pairs |= {
                (str(e["task"]), int(e["seed"])) for e in store.episodes(row["id"])
                if not finished or e["status"] == "finished"
            }  # fmt: skip
    return sorted(pairs)


def recorded_pairs(selection: str | None) -> set[tuple[str, int]]:
    """The task/seed pairs a dataset's selection JSON says it was mined from."""
    return {(str(t), int(seed)) for t, seed in json.loads(selection or "{}").get("pairs") or []}


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
            "relabelled": item.relabelled,
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
    done_candidates: int = 0
    done_share: float = 0.0
    relabelled: int = 0


def mine(
    store: Store, config: MineConfig, *, judge: Any = None, on_event: Callable[[str], None] | None = None
) -> MineResult:
    say = on_event or (lambda _m: None)
    if store.dataset_exists(config.out):
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
    share = done_share_of(kept)
    selection = {
        "config": asdict(config), "weights": WEIGHTS, "judge_rubric": JUDGE_RUBRIC if judge else None,
        "done_share": round(share, 4), "relabelled": sum(c.relabelled and c.kept for c in kept),
        "pairs": dataset_pairs(store, config.runs),
    }  # fmt: skip
    (folder / "selection.json").write_text(json.dumps(selection, indent=2), encoding="utf-8")
    dataset_id = store.insert_dataset(
        name=config.out, runs=config.runs, selection=selection, candidates=len(items), kept=len(kept),
        train=counts["train"], val=counts["val"], folder=str(folder),
    )  # fmt: skip
    dones = sum(c.verb == DONE for c in items)
    say(
        f"kept {len(kept)}: {counts['train']} train, {counts['val']} validation, in {folder}; "
        f"DONE {share:.0%} of the kept ({selection['relabelled']} relabelled redundant writes), "
        f"of {dones} DONE candidates"
    )
    return MineResult(
        dataset_id, folder, len(items), len(kept), counts["train"], counts["val"],
        done_candidates=dones, done_share=share, relabelled=int(selection["relabelled"]),
    )  # fmt: skip
