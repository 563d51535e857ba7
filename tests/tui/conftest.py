from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the async tests run on anyio's pytest plugin (no pytest-asyncio here)
