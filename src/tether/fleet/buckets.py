"""Rate-limit bucket state: the ``BucketStore`` protocol and its in-process implementation.

A key names one set of buckets (``RateLimiter`` uses ``"<api key label>/<model pool>"``). A set
holds up to three token buckets, named as the API names them: ``requests``, ``input_tokens``,
``output_tokens``. Each bucket holds at most its ``capacity`` (the per-minute limit) and refills
continuously at ``capacity / 60`` per second; there are no fixed windows (reference §5). A bucket
whose capacity is not known yet (no limit configured, no response seen) does not constrain.

The protocol is four atomic operations, so that a store shared by several workers (Redis,
PostgreSQL) can implement each as one script or one transaction:

- ``take(key, amounts, now) -> float`` — if every bucket holds its amount, debit them all and
  return ``0.0``; otherwise debit nothing and return the seconds until they would (the longest
  wait of the short buckets, or the rest of a pause); ``math.inf`` if an amount exceeds a
  bucket's capacity, so it can never pass.
- ``give(key, amounts, now)`` — add ``amounts`` back (a refund), or take them when negative (a
  correction after the fact, which may leave a bucket in debt); levels never exceed capacity.
- ``correct(key, observed, now) -> capacities`` — what the server said: set each named bucket's
  capacity to ``observed.limit`` and lower its level to ``observed.ceiling`` when that is below
  it. A bucket first seen here starts at ``min(limit, ceiling)``. Returns the capacity of every
  bucket the key has (``correct(key, {}, now)`` only reads them), so a worker learns at once what
  others have already observed.
- ``pause(key, seconds, now)`` — refuse every ``take`` on ``key`` for ``seconds`` (a 429's
  ``retry-after``); pauses only ever extend.

``now`` is the caller's clock reading in seconds; the store uses it only to refill and to measure
pauses, so times cross the protocol as durations (``seconds``, the return of ``take``), never as
instants. A shared store may use its own clock for ``now`` (e.g. Redis ``TIME``) as long as it uses
it for every operation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

BucketName = Literal["requests", "input_tokens", "output_tokens"]
BUCKETS: tuple[BucketName, ...] = ("requests", "input_tokens", "output_tokens")
Amounts = Mapping[str, float]
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Observed:
    """What a response said about one bucket: its per-minute limit, and at most how full it is now."""

    limit: float | None = None
    ceiling: float | None = None


class BucketStore(Protocol):
    """Rate-limit buckets, by key; every method is atomic (see the module docstring)."""

    async def take(self, key: str, amounts: Amounts, now: float) -> float: ...

    async def give(self, key: str, amounts: Amounts, now: float) -> None: ...

    async def correct(self, key: str, observed: Mapping[str, Observed], now: float) -> dict[str, float]: ...

    async def pause(self, key: str, seconds: float, now: float) -> None: ...


@dataclass(slots=True)
class Bucket:
    capacity: float
    level: float
    updated: float

    @property
    def rate(self) -> float:
        return self.capacity / 60.0

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait(self, amount: float) -> float:
        """Seconds until the bucket holds ``amount``: 0 if it does, ``inf`` if it never can."""
        if amount > self.capacity + EPSILON:
            return math.inf
        return 0.0 if self.level + EPSILON >= amount else (amount - self.level) / self.rate


class MemoryBuckets:
    """``BucketStore`` in this process: one dict; each method runs without awaiting, so it is atomic."""

    def __init__(self) -> None:
        self._sets: dict[str, dict[str, Bucket]] = {}
        self._paused: dict[str, float] = {}

    def _buckets(self, key: str, now: float) -> dict[str, Bucket]:
        buckets = self._sets.setdefault(key, {})
        for bucket in buckets.values():
            bucket.refill(now)
        return buckets

    async def take(self, key: str, amounts: Amounts, now: float) -> float:
        buckets = self._buckets(key, now)
        waits = [buckets[name].wait(amount) for name, amount in amounts.items() if name in buckets]
        wait = max([self._paused.get(key, now) - now, *waits, 0.0])
        if wait > 0:
            return wait
        for name, amount in amounts.items():
            if name in buckets:
                buckets[name].level -= amount
        return 0.0

    async def give(self, key: str, amounts: Amounts, now: float) -> None:
        buckets = self._buckets(key, now)
        for name, amount in amounts.items():
            if name in buckets:
                bucket = buckets[name]
                bucket.level = min(bucket.capacity, bucket.level + amount)

    async def correct(self, key: str, observed: Mapping[str, Observed], now: float) -> dict[str, float]:
        buckets = self._buckets(key, now)
        for name, seen in observed.items():
            bucket = buckets.get(name)
            if bucket is None:
                if not seen.limit:
                    continue
                start = seen.limit if seen.ceiling is None else min(seen.limit, seen.ceiling)
                buckets[name] = Bucket(float(seen.limit), float(start), now)
                continue
            if seen.limit:
                bucket.capacity = float(seen.limit)
            ceiling = bucket.capacity if seen.ceiling is None else min(bucket.capacity, seen.ceiling)
            bucket.level = min(bucket.level, ceiling)
        return {name: bucket.capacity for name, bucket in buckets.items()}

    async def pause(self, key: str, seconds: float, now: float) -> None:
        self._paused[key] = max(self._paused.get(key, now), now + seconds)

    def levels(self, key: str, now: float) -> dict[str, tuple[float, float]]:
        """``{bucket: (level, capacity)}`` of ``key`` at ``now`` (for metrics and tests)."""
        return {name: (b.level, b.capacity) for name, b in self._buckets(key, now).items()}
