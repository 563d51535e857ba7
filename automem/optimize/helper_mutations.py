"""Heuristic mutations that switch helpers on or tune them, from the digest's signals.

The paper's evolved structures gained most from memory kept in code; these mutations propose it
when the digest shows what it fixes: oscillation (oscillation_detector, passable_directions),
deaths by hunger or thirst (vitals_warning), files that grow to their cap (auto_prune), look-ups
that find nothing (auto_log, whose file the agent can then read), long runs without progress
(achievement_checklist on Crafter, nearest_targets elsewhere). A helper the structure's game does
not support is never proposed.
"""

from __future__ import annotations

from typing import Any

from automem.helpers import helper_info
from automem.memory.structure import Structure
from automem.optimize.heuristic import GROWTH, NEAR_CAP, ZERO_REWARD_STREAK, Mutation, Signals, _child

OSCILLATION_RATE = 0.15  # share of unrewarded steps that went back where the agent was two steps before
EMPTY_LOOKUP_RATE = 0.3
MIN_LOOKUPS = 5
NAME = "switch_on_helpers"
LOG_FILE = {
    "path": "log.md",
    "purpose": "each action and what it led to, kept by the auto_log helper (read it, do not write it)",
    "format": "step N: action -> outcome",
    "max_lines": 30,
    "max_chars": 3000,
    "read_only": True,
}


def _supported(s: Structure, name: str) -> bool:
    return helper_info(name).supports(s.game)


def _with(s: Structure, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The helpers with ``name`` added, or its parameters updated when it is already on."""
    helpers = [h.model_dump(mode="json") for h in s.helpers]
    if s.helper(name) is None:
        return [*helpers, {"name": name, "params": params}]
    return [{**h, "params": {**h["params"], **params}} if h["name"] == name else h for h in helpers]


def _add(s: Structure, name: str, reason: str, score: float, params: dict[str, Any] | None = None,
         **changes: Any) -> list[Mutation]:  # fmt: skip
    if not _supported(s, name):
        return []
    m = _child(s, NAME, reason, score, helpers=_with(s, name, params or {}), **changes)
    return [m] if m else []


def _oscillation(s: Structure, sig: Signals) -> list[Mutation]:
    if sig.oscillation_rate < OSCILLATION_RATE:
        return []
    why = f"{sig.oscillation_rate:.0%} of unrewarded steps went back to where the agent was two steps before"
    score = sig.oscillation_rate / OSCILLATION_RATE
    on = s.helper("oscillation_detector")
    if on is None:
        return _add(s, "oscillation_detector", f"{why}: warn about it", score)
    out = []
    window = int(on.params.get("window", 8))
    if window > 4:
        out += _add(s, "oscillation_detector", f"{why} with the detector on: warn after {window - 2} steps",
                    0.6 * score, {"window": window - 2})  # fmt: skip
    if s.helper("passable_directions") is None:
        out += _add(s, "passable_directions", f"{why} with the detector on: list the open moves", 0.8 * score)
    return out


def _starvation(s: Structure, sig: Signals) -> list[Mutation]:
    if not sig.starvation_deaths:
        return []
    why = f"{sig.starvation_deaths} episode(s) ended in death with food, drink or hunger critical"
    on = s.helper("vitals_warning")
    score = 1.0 + sig.starvation_deaths
    if on is None:
        return _add(s, "vitals_warning", f"{why}: warn when vitals run low", score)
    low = int(on.params.get("low", 3))
    fraction = float(on.params.get("hp_fraction", 0.5))
    if s.game == "crafter" and low < 8:
        return _add(s, "vitals_warning", f"{why} with the warning at {low}: warn at {low + 2}", 0.6 * score,
                    {"low": min(8, low + 2)})  # fmt: skip
    if s.game != "crafter" and fraction < 0.9:
        new = round(min(0.9, fraction + 0.2), 2)
        return _add(s, "vitals_warning", f"{why}: warn below {new:.0%} HP", 0.6 * score, {"hp_fraction": new})
    return []


def _growing_files(s: Structure, sig: Signals) -> list[Mutation]:
    out: list[Mutation] = []
    for spec in s.files:
        fs = sig.file(spec.path)
        if spec.read_only or fs.growth_chars_per_step < GROWTH or fs.final_lines < NEAR_CAP * spec.max_lines:
            continue
        if spec.max_lines < 4 or "key" in spec.format.lower():
            continue  # cutting the oldest lines of a keyed map would lose places, not stale notes
        keep = max(1, spec.max_lines // 2)
        reason = (
            f"{spec.path} grows {fs.growth_chars_per_step:.1f} chars/step and is at {fs.final_lines}/{spec.max_lines}"
            f" lines: cut it back to its newest {keep} lines before it fills"
        )
        params = {"path": spec.path, "max_lines": spec.max_lines - 1, "keep": keep}
        on = s.helper("auto_prune")
        if on is not None and on.params.get("path", "*") not in ("*", spec.path):
            continue  # one auto_prune per structure; it already keeps another file
        # below a loud cap_lines: raising a cap keeps the notes, pruning loses the oldest
        out += _add(s, "auto_prune", reason, min(4.0, 0.5 * fs.growth_chars_per_step / GROWTH), params)
    return out


def _empty_lookups(s: Structure, sig: Signals) -> list[Mutation]:
    if sig.lookups < MIN_LOOKUPS or sig.empty_lookup_rate < EMPTY_LOOKUP_RATE or s.helper("auto_log") is not None:
        return []
    reason = (
        f"{sig.empty_lookup_rate:.0%} of {sig.lookups} look-ups found nothing: let a helper log each action and "
        "its outcome in log.md, so there is something to look up"
    )
    files = [f.model_dump(mode="json") for f in s.files]
    if not any(f["path"] == LOG_FILE["path"] for f in files):
        files.append(dict(LOG_FILE))
    return _add(s, "auto_log", reason, sig.empty_lookup_rate / EMPTY_LOOKUP_RATE, {"path": "log.md"}, files=files)


def _no_progress(s: Structure, sig: Signals) -> list[Mutation]:
    if sig.longest_zero_reward_streak < ZERO_REWARD_STREAK:
        return []
    why = f"the longest zero-reward streak was {sig.longest_zero_reward_streak} steps"
    score = 0.9 * sig.longest_zero_reward_streak / ZERO_REWARD_STREAK
    for name, what in (("achievement_checklist", "name the achievements within reach"),
                       ("nearest_targets", "point at the nearest resources, stairs or unexplored ground")):  # fmt: skip
        if s.helper(name) is None and _supported(s, name):
            return _add(s, name, f"{why}: {what}", score)
    return []


def switch_on_helpers(s: Structure, sig: Signals) -> list[Mutation]:
    """Every helper mutation the signals call for (the heuristic critic ranks them with the rest)."""
    return [
        *_oscillation(s, sig),
        *_starvation(s, sig),
        *_growing_files(s, sig),
        *_empty_lookups(s, sig),
        *_no_progress(s, sig),
    ]
