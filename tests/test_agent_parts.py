from __future__ import annotations

from automem.agent.loop import resolve_fallback
from automem.agent.prompt import describe_actions, step_context, system_prompt, with_instructions
from automem.games.base import ActionSpec
from automem.memory.structure import load_builtin


def test_same_shaped_actions_share_a_line() -> None:
    actions = [ActionSpec("wait", "rest")] + [ActionSpec(c, f"key {c}: item {c} in a menu") for c in "bcdef"]
    text = describe_actions(actions)
    assert text.splitlines() == ["- wait: rest", "- b, c, d, e, f: key <x>: item <x> in a menu"]
    two = describe_actions([ActionSpec("b", "key b"), ActionSpec("c", "key c")])
    assert two.splitlines() == ["- b: key b", "- c: key c"]  # fewer than 3: kept apart


def test_system_prompt_fills_placeholders_from_game_and_structure() -> None:
    s = load_builtin("crafter-v0")
    text = system_prompt(
        s, game="crafter", task="default", rules="RULES", actions=[ActionSpec("noop", "x")], fallback="noop"
    )
    assert "RULES" in text and "- noop: x" in text and "map.md" in text and "upsert <file>" in text
    assert "$" not in text
    assert "delete <file>" not in text  # only enabled verbs are described


def test_step_context_orders_stable_to_volatile() -> None:
    text = with_instructions(
        step_context(pinned="== a.md ==\nx", history=["step 0: noop"], notes=["stuck"], observation="OBS"), "LOG: go"
    )
    order = [text.index(k) for k in ("Memory (pinned", "Recent steps", "Current observation", "! stuck", "LOG: go")]
    assert order == sorted(order)


def test_fallback_fits_the_game() -> None:
    none = load_builtin("none")  # fallback "auto"
    assert resolve_fallback(none, ["north", "wait", "search"]) == "wait"
    assert resolve_fallback(none, ["x", "y"]) == "x"
    assert resolve_fallback(load_builtin("crafter-v0"), ["noop", "do"]) == "noop"
