"""Suite-wide guards (no connection may leave this machine, no real credentials are used) and the
fixtures most folders share: one fake Messages API per module, a fresh API key per test, agents on it."""

from __future__ import annotations

import ipaddress
import socket
import uuid
from collections.abc import Iterator

import pytest

from tether import Agent, AnthropicClient, Settings
from tether.testing import FakeAPI

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _loopback_only(address) -> None:
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if host != "localhost":
                raise RuntimeError(f"tests may only connect to loopback, not {host!r}") from None
            return
        if not ip.is_loopback:
            raise RuntimeError(f"tests may only connect to loopback, not {host}")


def _guarded_connect(self, address):
    _loopback_only(address)
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    _loopback_only(address)
    return _connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path_factory):
    """No real credentials, and a home and data directory of the test's own (the default store lives there)."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "TETHER_STORE_URL",
                 "TETHER_MODEL"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAPI]:
    with FakeAPI() as server:
        yield server


@pytest.fixture
def key() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def make_agent(fake: FakeAPI, key: str):
    """``make_agent(settings=..., **options)``: an ``Agent`` on the fake API, its client closed after the test."""
    clients: list[AnthropicClient] = []

    def make(*, settings: Settings | None = None, **options) -> Agent:
        clients.append(client := AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=0))
        return Agent(client, settings=settings or Settings(), clock=fake.clock.now, **options)

    yield make
    for client in clients:
        await client.aclose()
