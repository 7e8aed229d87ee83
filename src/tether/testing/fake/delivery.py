"""Sending an answer, with the faults that strike while it is sent.

Events are gathered and written together when a delay or a fault falls due (or at the
end), so a stream without latency leaves in a single write: the fake stays fast under load. The
first token's delay counts from the request's arrival, as a client sees it: the fake's own work
(reading the request, rendering an answer that leaves whole) is done within it, and only work
beyond it makes an answer late.
``on_start`` runs just before ``message_start`` is written (the cache plan commits then).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

from tether.api.tokens import text_tokens
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
    # Nothing falls due before the end: the answer leaves in one write, made while the model "thinks".
    whole = _joined(frame for frame, _ in events) if cut is None and not latency.per_token else None
    if latency.first_token and not await ex.pause(latency.first_token - ex.age()):
        return
    if whole is not None:
        on_start()
        await ex.write(whole, more=False)
        return
    frames: list[str] = []
    for n, (frame, text) in enumerate(events):
        if cut is not None and n == cut.after_events:
            if not await _strike(ex, frames, cut):
                return
            frames.clear()
            cut = None
        if n == 0:
            on_start()
        frames.append(frame)
        if text and latency.per_token:
            await ex.write(_joined(frames))
            frames.clear()
            if not await ex.pause(latency.per_token * text_tokens(text)):
                return
    if cut is not None and not await _strike(ex, frames, cut):
        return
    await ex.write(_joined(frames), more=False)


def _joined(frames: Iterable[str]) -> bytes:
    return "".join(frames).encode()


async def _strike(ex: Exchange, frames: list[str], cut: Cut) -> bool:
    """Apply ``cut`` after the frames not yet written; return whether the stream goes on."""
    if isinstance(cut, StreamError):
        error = {"type": "error", "error": {"type": cut.error_type, "message": cut.message}}
        await ex.write(_joined([*frames, sse_frame(error)]), more=False)
        return False
    await ex.write(_joined(frames))
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
    if delay and not await ex.pause(delay - ex.age()):
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
