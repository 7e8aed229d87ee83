from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from tether import Agent, AnthropicClient, Settings
from tether.store.sql import open_store
from tether.testing import FakeAPI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def crash_fake_api() -> Iterator[str]:
    """``tether fake-api`` in its own process: a simulated coding agent whose streams take a while."""
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "tether.cli.main", "fake-api", "--port", str(port),
                                "--turns", "6", "--first-token-delay", "0.05", "--token-delay", "0.0005"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, "tether fake-api did not start"
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


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
def make_agent(fake: FakeAPI, key: str):
    def make(**options) -> Agent:
        client = AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=0)
        return Agent(client, settings=options.pop("settings", Settings()), clock=fake.clock.now, **options)

    return make
