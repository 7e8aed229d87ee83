"""Sending an answer, with the faults that strike while it is sent.

Events are gathered into one buffer and written when a delay or a fault falls due (or at the
end), so a stream without latency leaves in a single write: the fake stays fast under load.
``on_start`` runs just before ``message_start`` is written (the cache plan commits then).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

from tether.testing.fake.errors import APIFailure
from tether.testing.fake.exchange import JSON_TYPE, SSE_TYPE, Exchange
from tether.testing.fake.faults import ResetMidStream, Stall, StreamError
from tether.testing.fake.render import Event
from tether.testing.fake.state import Latency
from tether.testing.fake.wire import json_bytes, sse_frame

Cut: TypeAlias = ResetMidStream | StreamError | Stall


async def stream(
    ex: Exchange, events: Iterable[Event], on_start: Callable[[], None], cut: Cut | None, latency: Latency
) -> None:
    await ex.start(200, SSE_TYPE)
    if latency.first_token and not await ex.pause(latency.first_token):
        return
    buffer = bytearray()
    for n, (data, tokens) in enumerate(events):
        if cut is not None and n == cut.after_events:
            if not await _strike(ex, buffer, cut):
                return
            buffer.clear()
            cut = None
        if n == 0:
            on_start()
        buffer += sse_frame(data)
        if tokens and latency.per_token:
            await ex.write(bytes(buffer))
            buffer.clear()
            if not await ex.pause(latency.per_token * tokens):
                return
    if cut is not None and not await _strike(ex, buffer, cut):
        return
    await ex.write(bytes(buffer), more=False)


async def _strike(ex: Exchange, buffer: bytearray, cut: Cut) -> bool:
    """Apply ``cut`` after what is buffered; return whether the stream goes on."""
    if isinstance(cut, StreamError):
        error = {"type": "error", "error": {"type": cut.error_type, "message": cut.message}}
        await ex.write(bytes(buffer) + sse_frame(error), more=False)
        return False
    await ex.write(bytes(buffer))
    if isinstance(cut, ResetMidStream):
        await ex.reset()
        return False
    return await ex.pause(cut.seconds)


async def message(
    ex: Exchange,
    body: dict[str, Any],
    on_start: Callable[[], None],
    cut: Cut | None,
    latency: Latency,
    tokens: int,
) -> None:
    """A non-streaming answer; the stream faults become their closest equivalents."""
    if isinstance(cut, StreamError):
        raise APIFailure(cut.status, cut.message, error_type=cut.error_type)
    delay = (
        latency.first_token + latency.per_token * tokens + (cut.seconds if isinstance(cut, Stall) else 0.0)
    )
    if delay and not await ex.pause(delay):
        return
    on_start()
    payload = json_bytes(body)
    if isinstance(cut, ResetMidStream):
        await ex.start(200, JSON_TYPE, len(payload))
        await ex.write(payload[: len(payload) // 2])
        await ex.reset()
        return
    await ex.start(200, JSON_TYPE, len(payload))
    await ex.write(payload, more=False)
