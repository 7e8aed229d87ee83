"""Suite-wide guards: no connection may leave this machine, and no real credentials are used."""

from __future__ import annotations

import ipaddress
import socket

import pytest

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
def _no_real_credentials(monkeypatch):
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
