"""``GET /v1/runs/{id}/events``: a run's ``EventLog`` as a Server-Sent Events stream.

The stream starts after ``Last-Event-ID`` (the header, or ``?last_event_id=`` for clients that
cannot set headers), sends every frame the log holds past it, then follows the log live. Frames
that arrive together are written together, in one body chunk. A ``: keep-alive`` comment goes out
after ``heartbeat`` seconds of silence.

It ends:

- when the run rests (idle, completed, failed, cancelled) and the reader has every frame, the
  last being ``run_status``: after a follow-up, open it again with the last id seen;
- when the client goes away (a task watches ``receive`` for ``http.disconnect``);
- when the service shuts down: an ``event: shutdown`` frame, then the end. Reconnect with the last
  id: a run resumed by the next process goes on numbering where it stopped.

A reader too far behind (past the log's capacity) gets ``event: gap`` with ``{"missed": n,
"from": a, "to": b}`` (no id) before the frames that are left.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from starlette.types import Message, Receive, Scope, Send

from tether.server.eventlog import Wake, dumps, frame
from tether.server.runs import ServiceRun

HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
           (b"x-accel-buffering", b"no")]
KEEP_ALIVE = b": keep-alive\n\n"


@dataclass(eq=False)
class Reader:
    wake: Wake = field(default_factory=Wake)
    gone: bool = False
    beat: bool = False  # a heartbeat is due


class StreamHub:
    """Every open stream: the heartbeat wakes them all, and a shutdown ends them all at once.

    ``run()`` is the heartbeat; its owner (the ``Service``) cancels it when it closes.
    """

    def __init__(self, heartbeat: float = 15.0) -> None:
        self.heartbeat = heartbeat
        self.readers: set[Reader] = set()
        self.closing = False

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            for reader in self.readers:
                reader.beat = True
                reader.wake.set()

    def close(self) -> None:
        self.closing = True
        for reader in self.readers:
            reader.wake.set()


class EventStream:
    """An ASGI response that streams ``run``'s events after number ``after``."""

    def __init__(self, run: ServiceRun, after: int, hub: StreamHub) -> None:
        self.run, self.after, self.hub = run, after, hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reader = Reader()
        log = self.run.log
        self.hub.readers.add(reader)
        log.listen(reader.wake)
        watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive, reader))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await self._follow(reader, send)
        finally:
            log.unlisten(reader.wake)
            self.hub.readers.discard(reader)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if not reader.gone:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _follow(self, reader: Reader, send: Send) -> None:
        """Send what is new, else end, else beat, else wait. Nothing awaits between these checks
        and the wait, so no wake is missed (a ``Wake`` set while nobody waits is dropped)."""
        log, cursor = self.run.log, self.after
        while not reader.gone:
            if log.next_seq > cursor + 1:
                missed, frames = log.after(cursor)
                if missed:
                    frames.insert(0, frame(None, "gap", dumps({"missed": missed, "from": cursor + 1,
                                                               "to": cursor + missed})))
                cursor = log.last_seq
                await send(_body(b"".join(frames)))
            elif self.hub.closing:
                await send(_body(frame(None, "shutdown", "{}")))
                return
            elif not self.run.active:
                return
            elif reader.beat:
                reader.beat = False
                await send(_body(KEEP_ALIVE))
            else:
                await reader.wake.wait()


def _body(body: bytes) -> Message:
    return {"type": "http.response.body", "body": body, "more_body": True}


async def _watch_disconnect(receive: Receive, reader: Reader) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            reader.gone = True
            reader.wake.set()
            return
