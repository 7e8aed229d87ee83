"""A run's events as Server-Sent Events frames: numbered, kept in a bounded ring, read by many.

Each event is encoded once, when it is appended, as a whole SSE frame::

    id: 42
    event: text_delta
    data: {"text":"Hel","type":"text_delta"}

Sequence numbers run 1, 2, 3, … over the whole life of a service run, follow-ups included, and a
run resumed after a restart goes on from where the log stopped (``first``). The log keeps the last
``capacity`` frames. A reader that asks for frames older than that (it reconnected too late, the
run is long, or they were sent before a restart) gets ``missed`` > 0: the count it can never
have; the stream tells it so with a ``gap`` event. The conversation itself is always whole in the
session store.

Readers wait on a ``Wake`` of their own, which every append sets: appending never waits for a
reader, and a reader that is slow only falls behind (and, past ``capacity``, misses frames).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

DEFAULT_CAPACITY = 5_000


def frame(seq: int | None, kind: str, data: str) -> bytes:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {kind}\ndata: {data}\n\n".encode()


def dumps(data: Any) -> str:
    """Compact JSON on one line (SSE data may not hold a raw line break; JSON escapes them)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)


class Wake:
    """A reader's wake-up: ``log.listen(wake)``, then ``await wake.wait()`` whenever the reader has
    found nothing new; the next ``set()`` (an append, or any other reason to look again) ends it.

    Unlike an ``asyncio.Event`` it keeps no flag: a ``set`` while nobody waits is dropped, so the
    reader looks at the log right before it waits, with no ``await`` in between. What it saves per
    wake: the flag's clear-and-check and the coroutine of ``Event.wait`` (one future, nothing more).
    """

    __slots__ = ("_waiter",)

    def __init__(self) -> None:
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def wait(self) -> asyncio.Future[None]:
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        return waiter


class EventLog:
    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, first: int = 1) -> None:
        if capacity < 1:
            raise ValueError("an event log holds at least one frame")
        self.capacity = capacity
        self.next_seq = first  # the number the next frame gets
        self._start = first  # the first number this log ever held
        self._ring: list[bytes] = [b""] * capacity
        self._listeners: set[Wake] = set()

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1

    @property
    def oldest_seq(self) -> int:
        """The oldest number still kept (== ``next_seq`` while the log is empty)."""
        return max(self._start, self.next_seq - self.capacity)

    def append(self, kind: str, data: str) -> int:
        """Add one event (``data`` already JSON) and wake every reader; returns its number."""
        seq = self.next_seq
        self._ring[seq % self.capacity] = frame(seq, kind, data)
        self.next_seq = seq + 1
        for listener in self._listeners:
            listener.set()
        return seq

    def after(self, seq: int) -> tuple[int, list[bytes]]:
        """Frames numbered above ``seq``, oldest first, and how many of those were dropped already."""
        oldest = self.oldest_seq  # older frames were dropped, or sent by the process before a restart
        missed = max(0, min(oldest, self.next_seq) - (seq + 1))
        first = max(seq + 1, oldest)
        count, start = self.next_seq - first, first % self.capacity
        if count <= 0:
            return missed, []
        if start + count <= self.capacity:
            return missed, self._ring[start:start + count]
        return missed, self._ring[start:] + self._ring[:start + count - self.capacity]

    def listen(self, wake: Wake) -> None:
        self._listeners.add(wake)

    def unlisten(self, wake: Wake) -> None:
        self._listeners.discard(wake)
