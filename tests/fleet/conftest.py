"""The fleet tests' client on the fake API (the fake and the key come from tests/conftest.py)."""

from __future__ import annotations

import pytest

from tether.api.client import AnthropicClient


@pytest.fixture
async def api(fake, key):
    client = AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=0)
    yield client
    await client.aclose()
