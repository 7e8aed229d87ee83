"""One HTTP request and its response, in raw ASGI (the hot path avoids any framework).

Every response carries ``request-id`` and ``anthropic-organization-id``; the handler adds the
rate-limit headers to ``extra_headers`` before it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from tether.testing.fake import transport
from tether.testing.fake.errors import APIFailure
from tether.testing.fake.wire import json_bytes

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
SSE_TYPE = "text/event-stream; charset=utf-8"
JSON_TYPE = "application/json"
SHORT_PAUSE = 0.05  # below this a pause is a plain sleep


class Closing(threading.Event):
    """Set (from any thread) when the server shuts down: it also wakes the pauses waiting on it,
    each on its own event loop, so that nothing polls it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiters: set[asyncio.Future[None]] = set()

    def set(self) -> None:
        super().set()
        for waiter in list(self.waiters):
            with contextlib.suppress(RuntimeError):  # its loop is closed: nothing waits any more
                waiter.get_loop().call_soon_threadsafe(_wake, waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _headers(pairs: list[tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in pairs:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


class Exchange:
    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        organization: str,
        closing: Closing | None = None,
    ) -> None:
        self.arrived = time.monotonic()
        self.scope, self._receive, self._send = scope, receive, send
        self.closing = closing or Closing()
        self.request_id = request_id
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.header_list = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        self.headers = _headers(self.header_list)
        self.extra_headers: dict[str, str] = {}
        self.model = ""  # the request's model, once known (rate-limit headers are per model)
        self.status: int | None = None
        self.record: Any = None  # the RecordedRequest, which learns the status as it is sent
        self._base = [
            (b"request-id", request_id.encode()),
            (b"anthropic-organization-id", organization.encode()),
        ]

    @property
    def started(self) -> bool:
        return self.status is not None

    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.scope.get("query_string", b"").decode("latin-1"))

    async def read_body(self, limit: int) -> bytes:
        """The whole body; past ``limit`` bytes it is drained (so the client reads our answer) and
        refused with a 413."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            if not message.get("more_body"):
                break
        if size > limit:
            raise APIFailure(413, "Request exceeds the maximum allowed number of bytes.")
        return b"".join(chunks)

    def mark(self, status: int) -> None:
        self.status = status
        if self.record is not None:
            self.record.status = status

    async def start(self, status: int, content_type: str, length: int | None = None) -> None:
        self.mark(status)
        headers = [*self._base, (b"content-type", content_type.encode())]
        headers += [(k.encode(), v.encode()) for k, v in self.extra_headers.items()]
        if content_type == SSE_TYPE:
            headers.append((b"cache-control", b"no-cache"))
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def write(self, data: bytes, more: bool = True) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def json(self, status: int, value: Any) -> None:
        payload = json_bytes(value)
        await self.start(status, JSON_TYPE, len(payload))
        await self.write(payload, more=False)

    def age(self) -> float:
        """Seconds since the request arrived."""
        return time.monotonic() - self.arrived

    async def pause(self, seconds: float) -> bool:
        """Wait ``seconds`` with the connection open; False if the client left (or the server is
        closing, which ends the wait early but lets the answer finish)."""
        if seconds < SHORT_PAUSE:
            await asyncio.sleep(seconds)
            return True
        # One future that the timer, the client leaving and the server closing each wake (what
        # asyncio.wait does, for a fraction of its cost: nearly every answer pauses).
        loop = asyncio.get_running_loop()
        woken = loop.create_future()
        self.closing.waiters.add(woken)  # before is_set(): a set() in between still wakes it
        timer = loop.call_later(seconds, _wake, woken)
        gone = loop.create_task(self._disconnected())
        gone.add_done_callback(lambda _: _wake(woken))
        try:
            if not self.closing.is_set():
                await woken
            return not gone.done()
        finally:
            timer.cancel()
            gone.cancel()
            self.closing.waiters.discard(woken)

    async def _disconnected(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass

    async def reset(self) -> None:
        """Drop the connection with a TCP reset (see ``transport``)."""
        await transport.reset(dict(self.scope), self._receive)
