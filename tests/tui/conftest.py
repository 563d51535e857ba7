from __future__ import annotations

import pytest


@pytest.fixture
def tui_store(tmp_path):
    from automem.store import Store

    s = Store(tmp_path / "tui.db")
    yield s
    s.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the async tests run on anyio's pytest plugin (no pytest-asyncio here)
