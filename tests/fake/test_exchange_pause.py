"""``Exchange.pause``: the fake's delays end early when the client leaves or the server shuts down."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from tether.testing.fake.exchange import Closing, Exchange

SCOPE = {"type": "http", "method": "POST", "path": "/v1/messages", "headers": []}


def exchange(closing: Closing, leaves_after: float | None = None) -> Exchange:
    """An exchange whose client sends nothing more, and disconnects after ``leaves_after`` seconds."""

    async def receive() -> dict[str, Any]:
        if leaves_after is None:
            await asyncio.Future()
        await asyncio.sleep(leaves_after)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        pass

    return Exchange(SCOPE, receive, send, "req_1", "org", closing)


async def timed(ex: Exchange, seconds: float) -> tuple[bool, float]:
    started = time.monotonic()
    result = await ex.pause(seconds)
    return result, time.monotonic() - started


async def test_a_pause_lasts_its_length_and_leaves_nothing_behind() -> None:
    closing = Closing()
    went_on, took = await timed(exchange(closing), 0.2)
    assert went_on and took >= 0.2
    await asyncio.sleep(0)
    assert not closing.waiters
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_the_client_leaving_ends_a_pause() -> None:
    went_on, took = await timed(exchange(Closing(), leaves_after=0.1), 30)
    assert not went_on and took < 2


async def test_closing_from_another_thread_ends_pauses_early() -> None:
    closing = Closing()
    threading.Timer(0.1, closing.set).start()
    results = await asyncio.gather(*(timed(exchange(closing), 30) for _ in range(3)))
    assert all(went_on and took < 2 for went_on, took in results)
    assert not closing.waiters


async def test_a_pause_while_closing_returns_at_once() -> None:
    closing = Closing()
    closing.set()
    went_on, took = await timed(exchange(closing), 30)
    assert went_on and took < 0.5
    closing.clear()
    went_on, took = await timed(exchange(closing), 0.1)
    assert went_on and took >= 0.1
