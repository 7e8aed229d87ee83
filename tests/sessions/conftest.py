from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tether import Agent, AnthropicClient, Settings
from tether.store.sql import open_store
from tether.testing import FakeAPI
from tether.testing.process import fake_api_process


@pytest.fixture
def crash_fake_api() -> Iterator[str]:
    """``tether fake-api`` in its own process: a simulated coding agent whose streams take a while."""
    with fake_api_process("--turns", "6", "--first-token-delay", "0.05", "--token-delay", "0.0005") as url:
        yield url


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAPI]:
    with FakeAPI() as server:
        yield server


@pytest.fixture
def key() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def store(tmp_path):
    s = await open_store(str(tmp_path / "sessions.db"))
    yield s
    await s.close()


@pytest.fixture
async def make_agent(fake: FakeAPI, key: str):
    clients: list[AnthropicClient] = []

    def make(**options) -> Agent:
        clients.append(client := AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=0))
        return Agent(client, settings=options.pop("settings", Settings()), clock=fake.clock.now, **options)

    yield make
    for client in clients:
        await client.aclose()
