"""Fixtures for the fake Messages API tests: one server for the module, a fresh API key per test.

Every test talks to the fake through the official SDK (or a plain httpx2 client) over a real
loopback socket; nothing is patched. A test that changes server-wide state (the clock, the
default behaviour) starts its own ``FakeAPI`` instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx2
import pytest

from tether.testing import FakeAPI

MODEL = "claude-opus-4-8"
USER = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def client(fake: FakeAPI, key: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.base_url, api_key=key, max_retries=0) as c:
        yield c


@pytest.fixture
def aclient(fake: FakeAPI, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=fake.base_url, api_key=key, max_retries=0)


@pytest.fixture
def http(fake: FakeAPI) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=fake.base_url, timeout=10) as c:
        yield c


@pytest.fixture
def headers(key: str) -> dict[str, str]:
    """What SDK 2.12 sends, for raw requests."""
    return {
        "authorization": f"Bearer {key}",
        "anthropic-version": "2026-10-21",
        "content-type": "application/json",
    }


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of every SSE event; asserts each event is exactly one event: and one data: line."""
    events = []
    for chunk in raw.decode().split("\n\n"):
        if not chunk:
            continue
        lines = chunk.split("\n")
        assert len(lines) == 2, chunk
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), chunk
        events.append((lines[0][len("event: ") :], json.loads(lines[1][len("data: ") :])))
    return events


@pytest.fixture
def raw_stream(
    http: httpx2.Client, headers: dict[str, str]
) -> Callable[..., list[tuple[str, dict[str, Any]]]]:
    """POST a streaming request with a plain HTTP client and return its parsed events."""

    def run(**body: Any) -> list[tuple[str, dict[str, Any]]]:
        body = {"model": MODEL, "max_tokens": 1000, "messages": USER, "stream": True, **body}
        response = http.post("/v1/messages", headers=headers, json=body)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        return parse_sse(response.content)

    return run
