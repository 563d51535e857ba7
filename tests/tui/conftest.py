from __future__ import annotations

import json
from pathlib import Path

import pytest

EPISODES = Path(__file__).parent.parent / "data" / "episodes"


def load_episode(store, name: str) -> int:
    """Import a recorded episode (tests/data/episodes/NAME.json) under a run of its own; returns its id.

    These were recorded with the bundled model by `automem run`, so replays of them show exactly
    what a real episode shows, without a model's run-to-run variation.
    """
    bundle = json.loads((EPISODES / f"{name}.json").read_text())
    episode = bundle["episode"]
    store.db["structures"].insert(
        {"id": episode["structure_id"], "name": episode["structure_id"][:0] or _name(bundle), "game": episode["game"],
         "parent": None, "author": "builtin", "yaml": bundle["structure_yaml"], "created_at": "2026-11-24T00:00:00"},
        ignore=True,
    )  # fmt: skip
    run_id = store.create_run(
        name=f"fixture-{name}", game=episode["game"], task=episode["task"], structure_id=episode["structure_id"],
        engine=episode["engine"], memory_engine=None, config={},
    )  # fmt: skip
    return store.import_episode(bundle, run_id)


def _name(bundle) -> str:  # type: ignore[no-untyped-def]
    import yaml

    return yaml.safe_load(bundle["structure_yaml"])["name"]


@pytest.fixture
def tui_store(tmp_path):
    from automem.store import Store

    s = Store(tmp_path / "tui.db")
    yield s
    s.close()
