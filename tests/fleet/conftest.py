"""Shared fixtures of the fleet tests: one fake Messages API per module, a fresh API key per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tether.api.client import AnthropicClient
from tether.testing import FakeAPI


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAPI]:
    with FakeAPI() as server:
        yield server


@pytest.fixture
def key() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def api(fake, key):
    client = AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=0)
    yield client
    await client.aclose()
