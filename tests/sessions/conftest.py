from __future__ import annotations

from collections.abc import Iterator

import pytest

from tether.store.sql import open_store
from tether.testing.process import fake_api_process


@pytest.fixture
def crash_fake_api() -> Iterator[str]:
    """``tether fake-api`` in its own process: a simulated coding agent whose streams take a while."""
    with fake_api_process("--turns", "6", "--first-token-delay", "0.05", "--token-delay", "0.0005") as url:
        yield url


@pytest.fixture
async def store(tmp_path):
    s = await open_store(str(tmp_path / "sessions.db"))
    yield s
    await s.close()


