"""Time for the fake Messages API: a protocol, the real clock, and a clock tests move by hand.

The cache and rate-limit models never sleep and never read the time themselves; they ask a
``Clock``. ``now()`` is in seconds on an arbitrary monotonic scale; ``now() + wall_offset`` is unix
time, which is only needed to print the RFC 3339 ``reset`` headers.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import time
from typing import Protocol

# 2026-11-21T00:00:00Z, the date of the API reference: where a ManualClock's time 0 falls.
DEFAULT_EPOCH = 1_795_219_200.0


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...


class SystemClock:
    """The process's monotonic clock; ``wall_offset`` is fixed when the clock is made."""

    def __init__(self) -> None:
        self.wall_offset = time.time() - time.monotonic()

    def now(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when ``advance`` is called."""

    def __init__(self, start: float = 0.0, wall_offset: float = DEFAULT_EPOCH) -> None:
        self._now = start
        self.wall_offset = wall_offset

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go back")
        self._now += seconds


def unix_time(clock: Clock, at: float) -> float:
    """The unix time of the clock reading ``at`` (a clock without ``wall_offset`` counts from 1970)."""
    return at + getattr(clock, "wall_offset", 0.0)


def rfc3339(unix_seconds: float) -> str:
    """``2026-11-21T00:00:05Z``: UTC, whole seconds, rounded **up** so that waiting until the
    printed instant is always enough."""
    return _stamp(math.ceil(unix_seconds - 1e-6))


@functools.lru_cache(maxsize=64)  # every response prints four, nearly always the same few seconds
def _stamp(second: int) -> str:
    return dt.datetime.fromtimestamp(second, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
