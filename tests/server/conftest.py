"""Fixtures of the service tests (helpers in ``server_helpers``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from server_helpers import Harness, open_harness

from tether.testing import FakeAPI


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAPI]:
    with FakeAPI() as server:
        yield server


@pytest.fixture
def key() -> str:
    return f"sk-ant-test-{uuid.uuid4().hex[:16]}"


@pytest.fixture
async def harness(fake, key, tmp_path) -> AsyncIterator[Harness]:
    async with open_harness(fake, key, tmp_path) as h:
        yield h


@pytest.fixture
async def gated(fake, key, tmp_path) -> AsyncIterator[Harness]:
    async with open_harness(fake, key, tmp_path, gated=True) as h:
        yield h
