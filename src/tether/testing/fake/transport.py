"""Real broken connections: the one thing an ASGI app cannot ask its server for.

``FakeProtocol`` is uvicorn's httptools protocol (its fast one) with one addition: each request's ``scope["state"]``
carries the connection's asyncio transport. ``reset`` then sets ``SO_LINGER`` to zero and aborts
it, so the kernel sends a TCP RST and the client sees a connection reset, as when a load balancer
drops a connection. Without the transport (another server), ``reset`` raises instead, which uvicorn
turns into a 500 before the response starts or a closed connection after.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TRANSPORT = "tether.fake.transport"


class FakeProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app_state = {**self.app_state, TRANSPORT: transport}
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio skips this for sockets made with proto 0; without it, Nagle's algorithm holds
            # the body behind the headers until the client's delayed ACK: 40 ms a response.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class ConnectionDropped(Exception):
    """Raised when the server cannot drop the connection itself."""


async def reset(scope: dict[str, Any], receive: Any) -> None:
    transport: asyncio.Transport | None = scope.get("state", {}).get(TRANSPORT)
    if transport is None:
        raise ConnectionDropped("no transport in scope: cannot reset the connection")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    while (await receive())["type"] != "http.disconnect":  # let uvicorn see the connection go
        pass
