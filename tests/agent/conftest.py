"""The loop against tether's fake Messages API on loopback, through the real SDK client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tether import Agent, AnthropicClient, Settings
from tether.testing import FakeAPI


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAPI]:
    with FakeAPI() as server:
        yield server


@pytest.fixture
def key() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def make_agent(fake: FakeAPI, key: str):
    clients: list[AnthropicClient] = []

    def make(*, settings: Settings | None = None, **options) -> Agent:
        clients.append(client := AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=0))
        return Agent(client, settings=settings or Settings(), clock=fake.clock.now, **options)

    yield make
    for client in clients:
        await client.aclose()
