from __future__ import annotations

import pytest


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
