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

Readers wait on an ``asyncio.Event`` of their own, which every append sets: appending never waits
for a reader, and a reader that is slow only falls behind (and, past ``capacity``, misses frames).
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


class EventLog:
    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, first: int = 1) -> None:
        if capacity < 1:
            raise ValueError("an event log holds at least one frame")
        self.capacity = capacity
        self.next_seq = first  # the number the next frame gets
        self._start = first  # the first number this log ever held
        self._ring: list[bytes] = [b""] * capacity
        self._listeners: set[asyncio.Event] = set()

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
        return missed, [self._ring[s % self.capacity] for s in range(first, self.next_seq)]

    def listen(self, wake: asyncio.Event) -> None:
        self._listeners.add(wake)

    def unlisten(self, wake: asyncio.Event) -> None:
        self._listeners.discard(wake)
