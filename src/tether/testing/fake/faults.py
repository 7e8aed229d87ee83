"""Faults the fake can inject, and the schedule that decides when (a queue, then a seeded coin).

Each fault is a small frozen dataclass; ``Fault`` is their closed union:

- ``ErrorResponse``  answer with an HTTP error instead of a message (429, 529, 500, ...);
- ``Reset``          drop the TCP connection (RST) before any byte of the response;
- ``ResetMidStream`` send ``after_events`` SSE events, then drop the connection;
- ``StreamError``    send ``after_events`` events, then ``event: error`` and end the stream (HTTP 200);
- ``Stall``          send ``after_events`` events, then go silent for ``seconds`` (socket open), then go on;
- ``SlowFirstToken`` wait ``seconds`` after the response headers, before ``message_start``;
- ``TokenDelay``     wait ``seconds_per_token`` for every output token streamed.

A non-streaming request meets the stream faults as their closest equivalent: a reset halfway
through the body, the error as an HTTP status, a stall or delay before the body.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from tether.testing.fake.errors import STATUS_OF_TYPE

RATE_LIMIT_MESSAGE = (
    "This request would exceed your organization's rate limit. For details, refer to "
    "https://docs.claude.com/en/api/rate-limits."
)


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    status: int
    error_type: str
    message: str
    retry_after: float | None = None  # seconds, sent as the ``retry-after`` header
    should_retry: bool | None = None  # sent as ``x-should-retry`` when set


@dataclass(frozen=True, slots=True)
class Reset:
    pass


@dataclass(frozen=True, slots=True)
class ResetMidStream:
    after_events: int = 3


@dataclass(frozen=True, slots=True)
class StreamError:
    after_events: int = 3
    error_type: str = "overloaded_error"
    message: str = "Overloaded"

    @property
    def status(self) -> int:
        return STATUS_OF_TYPE.get(self.error_type, 500)


@dataclass(frozen=True, slots=True)
class Stall:
    seconds: float = 30.0
    after_events: int = 3


@dataclass(frozen=True, slots=True)
class SlowFirstToken:
    seconds: float


@dataclass(frozen=True, slots=True)
class TokenDelay:
    seconds_per_token: float


Fault: TypeAlias = ErrorResponse | Reset | ResetMidStream | StreamError | Stall | SlowFirstToken | TokenDelay
FAULT_TYPES = (ErrorResponse, Reset, ResetMidStream, StreamError, Stall, SlowFirstToken, TokenDelay)


def rate_limited(retry_after: float | None = 1.0, message: str = RATE_LIMIT_MESSAGE) -> ErrorResponse:
    return ErrorResponse(429, "rate_limit_error", message, retry_after)


def overloaded(message: str = "Overloaded", retry_after: float | None = None) -> ErrorResponse:
    return ErrorResponse(529, "overloaded_error", message, retry_after)


def server_error(message: str = "Internal server error", retry_after: float | None = None) -> ErrorResponse:
    return ErrorResponse(500, "api_error", message, retry_after)


DEFAULT_RANDOM_FAULTS: tuple[Fault, ...] = (
    rate_limited(),
    overloaded(),
    server_error(),
    Reset(),
    ResetMidStream(),
    StreamError(),
)


class FaultSchedule:
    """Queued faults first (one per request), then each request fails with probability ``rate``."""

    def __init__(self) -> None:
        self._queue: deque[Fault] = deque()
        self._rate = 0.0
        self._rng = random.Random(0)
        self._kinds: tuple[Fault, ...] = DEFAULT_RANDOM_FAULTS

    def push(self, faults: Iterable[Fault]) -> None:
        for fault in faults:
            if not isinstance(fault, FAULT_TYPES):
                raise TypeError(f"not a fault: {fault!r}")
            self._queue.append(fault)

    def randomly(self, rate: float, seed: int = 0, kinds: Sequence[Fault] | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        self._rng = random.Random(seed)
        self._kinds = tuple(kinds) if kinds else DEFAULT_RANDOM_FAULTS
        self._rate = rate

    def clear(self) -> None:
        self._queue.clear()
        self._rate = 0.0

    def next(self) -> Fault | None:
        if self._queue:
            return self._queue.popleft()
        if self._rate and self._rng.random() < self._rate:
            return self._rng.choice(self._kinds)
        return None
