from __future__ import annotations

import json
from pathlib import Path

import pytest

EPISODES = Path(__file__).parent / "data" / "episodes"


def load_episode(store, name: str, edit=None, label: str | None = None) -> int:  # type: ignore[no-untyped-def]
    """Import a recorded episode (tests/data/episodes/NAME.json) under a run of its own; returns its id.

    These were recorded with the bundled model by `automem run`, so replays of them show exactly
    what a real episode shows, without a model's run-to-run variation. ``edit(bundle)`` changes the
    bundle before the import (a variant of the same seed; ``label`` names its run).
    """
    bundle = json.loads((EPISODES / f"{name}.json").read_text())
    if edit is not None:
        edit(bundle)
    episode = bundle["episode"]
    store.db["structures"].insert(
        {"id": episode["structure_id"], "name": _name(bundle), "game": episode["game"],
         "parent": None, "author": "builtin", "yaml": bundle["structure_yaml"], "created_at": "2026-11-24T00:00:00"},
        ignore=True,
    )  # fmt: skip
    run_id = store.create_run(
        name=f"fixture-{label or name}", game=episode["game"], task=episode["task"],
        structure_id=episode["structure_id"], engine=episode["engine"], memory_engine=None, config={},
    )  # fmt: skip
    return store.import_episode(bundle, run_id)


def _name(bundle) -> str:  # type: ignore[no-untyped-def]
    import yaml

    return yaml.safe_load(bundle["structure_yaml"])["name"]


@pytest.fixture(scope="session")
def bundled_model_path():
    from automem.engines.bundled import bundled_model_path

    return bundled_model_path()


@pytest.fixture(scope="session")
def engine(bundled_model_path):
    """One in-process llama.cpp engine with the bundled model, shared by the session's tests."""
    from automem.engines.llamacpp import LlamaCppEngine

    eng = LlamaCppEngine(bundled_model_path, n_ctx=8192)
    yield eng
    eng.close()


@pytest.fixture
def store(tmp_path):
    from automem.store import Store

    s = Store(tmp_path / "automem.db")
    yield s
    s.close()


@pytest.fixture
def recorded():
    """load_episode(store, name): import a recorded episode from tests/data/episodes."""
    return load_episode


def _better(bundle) -> None:  # type: ignore[no-untyped-def]
    """Crafter seed 7 as a better agent: another action at step 2, wood at step 5, no map write at step 10."""
    for row in bundle["steps"]:
        if row["step"] == 2:
            row["action"] = "move_left"
        if row["step"] >= 5:
            row["achievements"], row["progression"] = '["collect_wood"]', 100 / 22
        if row["step"] == 5:
            row["reward"] = 1.0
    bundle["memory_ops"] = [op for op in bundle["memory_ops"] if op["step"] != 10]


def _shorter(bundle) -> None:  # type: ignore[no-untyped-def]
    """Crafter seed 7 ended after 8 steps."""
    for table in ("steps", "llm_calls", "memory_ops"):
        bundle[table] = [row for row in bundle[table] if row["step"] < 8]
    bundle["steps"][-1]["done"] = 1
    bundle["episode"]["steps"] = 8


@pytest.fixture
def compared(store):
    """Three episodes of Crafter seed 7 for lockstep comparison: (recorded, better, shorter) ids."""
    return (
        load_episode(store, "crafter-seed7"),
        load_episode(store, "crafter-seed7", _better, "crafter-seed7-better"),
        load_episode(store, "crafter-seed7", _shorter, "crafter-seed7-shorter"),
    )


@pytest.fixture
def no_stray_jobs():
    """A failed assertion must not leave a background job's evaluation running after the test."""
    import os
    import signal

    from automem.jobs import supervisor

    yield
    for pid, proc in list(supervisor._children.items()):
        if proc.poll() is None:
            os.killpg(pid, signal.SIGKILL)
            proc.wait()


# -- the `model` marker: `pytest -m "not model"` is the suite without the bundled model ---------
#: fixtures that load the bundled model (or hand its path to something that will)
_MODEL_FIXTURES = {"engine", "bundled_model_path"}
_running: dict[str, pytest.Item | None] = {"item": None}
_unmarked: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Watch the in-process engines: a test that builds one without the marker is listed at the end
    (engines built in a child process, by a job or a CLI subprocess, are not seen)."""
    from automem.engines import llamacpp, transformers_engine

    for cls in (llamacpp.LlamaCppEngine, transformers_engine.TransformersEngine):
        original = cls.__init__

        def watched(self, *args, __original=original, **kwargs):  # type: ignore[no-untyped-def]
            result = __original(self, *args, **kwargs)  # one that refuses a missing file loads nothing
            item = _running["item"]
            if item is not None and item.get_closest_marker("model") is None and item.nodeid not in _unmarked:
                _unmarked.append(item.nodeid)
            return result

        cls.__init__ = watched  # type: ignore[method-assign]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):  # type: ignore[no-untyped-def]
    _running["item"] = item
    yield
    _running["item"] = None


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if _unmarked:
        terminalreporter.write_sep("-", f"{len(_unmarked)} tests built a model engine without the 'model' marker")
        for nodeid in _unmarked:
            terminalreporter.write_line(nodeid)
