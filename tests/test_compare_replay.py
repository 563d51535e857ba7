"""Lockstep replay of two or three episodes of one seed: alignment, differences, who is ahead, refusals."""

from __future__ import annotations

import pytest

from automem.runs.compare_replay import CompareError, LockstepReplay, check_count, open_lockstep
from automem.runs.replay import EpisodeReplay, ReplayError


def test_steps_together_and_the_shorter_one_stays_on_its_last_step(store, compared):
    base, better, shorter = compared
    lockstep = open_lockstep(store, [base, better, shorter])
    assert len(lockstep) == 12 and lockstep.last == 11
    at7 = lockstep.at(7)
    assert [(p.index, p.ended) for p in at7] == [(7, False), (7, False), (7, False)]
    at9 = lockstep.at(9)
    assert [(p.index, p.ended) for p in at9] == [(9, False), (9, False), (7, True)]
    assert at9[2].replay.episode_id == shorter


def test_next_difference_in_action_or_memory_write(store, compared):
    base, better, shorter = compared
    lockstep = open_lockstep(store, [base, better, shorter])
    # step 2: another action; step 10: only the recorded one upserts map.md (the shorter one has ended)
    assert lockstep.next_difference(0) == 2
    assert lockstep.next_difference(2) == 10
    assert lockstep.next_difference(10) is None
    assert lockstep.previous_difference(10) == 2 and lockstep.previous_difference(2) is None
    assert lockstep.differs(10) and not lockstep.differs(5)
    # the recorded episode and its shortened copy never part while both play
    same = open_lockstep(store, [base, shorter])
    assert same.next_difference(-1) is None


def test_who_is_ahead(store, compared):
    base, better, shorter = compared
    lockstep = open_lockstep(store, [base, better, shorter])
    assert lockstep.standing(4).leaders == () and lockstep.standing(4).text == "level: 0.0% 0★"
    ahead = lockstep.standing(5)
    assert ahead.leaders == (1,)
    assert ahead.text == f"#{better} ahead · #{base} 0.0% 0★ · #{better} 4.5% 1★ · #{shorter} 0.0% 0★"
    assert lockstep.standing(11).leaders == (1,)  # the shorter one counts with what it reached


def test_refusals(store, compared, recorded):
    base, better, _ = compared
    nethack = recorded(store, "nethack-seed7")
    with pytest.raises(CompareError, match="2 or 3 episodes, got 1"):
        open_lockstep(store, [base])
    with pytest.raises(CompareError, match="2 or 3 episodes, got 4"):
        check_count([1, 2, 3, 4])
    with pytest.raises(CompareError, match=f"episode {base} is given twice"):
        open_lockstep(store, [base, base])
    with pytest.raises(CompareError, match="same game, task and seed") as info:
        open_lockstep(store, [base, nethack])
    assert f"{nethack} is nethack/NetHackScore-v0 seed 7" in str(info.value)
    with pytest.raises(ReplayError, match="no episode 99"):
        open_lockstep(store, [base, 99])

    def _empty(bundle) -> None:  # type: ignore[no-untyped-def]
        for table in ("steps", "llm_calls", "memory_ops"):
            bundle[table] = []

    empty = recorded(store, "crafter-seed7", _empty, "crafter-seed7-empty")
    with pytest.raises(CompareError, match=f"episode {empty} has no recorded steps"):
        open_lockstep(store, [base, empty])
    other_seed = recorded(store, "crafter-seed1004")
    with pytest.raises(CompareError, match="seed 1004"):
        LockstepReplay([EpisodeReplay(store, better), EpisodeReplay(store, other_seed)])
