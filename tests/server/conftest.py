"""Fixtures of the service tests (helpers in ``server_helpers``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from server_helpers import Harness, open_harness


@pytest.fixture
def key() -> str:
    """Shaped like a real key, so that the leak tests look for what a real one would be."""
    return f"sk-ant-test-{uuid.uuid4().hex[:16]}"


@pytest.fixture
async def harness(fake, key, tmp_path) -> AsyncIterator[Harness]:
    async with open_harness(fake, key, tmp_path) as h:
        yield h


@pytest.fixture
async def gated(fake, key, tmp_path) -> AsyncIterator[Harness]:
    async with open_harness(fake, key, tmp_path, gated=True) as h:
        yield h
