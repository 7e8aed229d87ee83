"""The rate limits of the fake Messages API (reference §5): continuously refilled token buckets.

The rules, each pinned by ``tests/fake/test_ratelimit_model.py``:

- **Buckets.** One set per (API key, pool). A model's pool is its id unless ``pools`` maps it to a
  shared name (the real API pools e.g. the Opus 4.x models). Its limits are ``per_model[model]``,
  else ``per_model[pool]``, else ``default``. A set holds three buckets: requests (capacity RPM),
  input tokens (ITPM) and output tokens (OTPM). Each starts full and refills continuously at
  ``limit / 60`` per second up to its capacity; there are no fixed windows.
- **Admission.** A request needs 1 request, ``input_tokens`` input tokens (the caller passes the
  uncached input plus cache creation; cache reads are free) and its output estimate,
  ``min(max_tokens, OTPM)`` output tokens (capped so that a large ``max_tokens`` is not refused
  forever). If every bucket holds enough, all three are debited; otherwise nothing is, and
  ``retry_after`` is the exact time until every short bucket has refilled enough, the longest of
  their waits; ``limited_by`` names that bucket. A request whose input alone exceeds ITPM can never
  pass: it is refused with ``retry_after = None`` and no ``retry-after`` header.
- **Settling.** ``Admission.settle(output_tokens)`` returns ``estimate - output_tokens`` to the
  output bucket (or takes more, possibly into debt, if the output exceeded the estimate).
- **Headers.** For ``requests``, ``input-tokens`` and ``output-tokens``: ``limit`` = the per-minute
  limit, ``remaining`` = the bucket's level, floored (never below 0) and, for token buckets,
  rounded to the nearest thousand as the real API does (``round_remaining=False`` gives exact
  values), and ``reset`` = when the bucket would be full again, RFC 3339 UTC rounded up to the
  second. ``tokens-*`` repeats the more restrictive token bucket: the one with the lower fraction
  of its capacity left; on a tie, the one with fewer tokens left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from tether.testing.fake.clock import Clock, rfc3339, unix_time

EPSILON = 1e-9
BucketName = Literal["requests", "input_tokens", "output_tokens"]


@dataclass(frozen=True, slots=True)
class Limits:
    requests_per_minute: int
    input_tokens_per_minute: int
    output_tokens_per_minute: int

    def __post_init__(self) -> None:
        if min(self.requests_per_minute, self.input_tokens_per_minute, self.output_tokens_per_minute) <= 0:
            raise ValueError(f"rate limits must be positive: {self}")


@dataclass(slots=True)
class _Bucket:
    capacity: float
    level: float
    updated: float

    @property
    def rate(self) -> float:
        return self.capacity / 60.0

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait(self, need: float) -> float:
        """Seconds until the bucket holds ``need`` (0 if it does now)."""
        return 0.0 if self.level + EPSILON >= need else (need - self.level) / self.rate

    def until_full(self) -> float:
        return max(0.0, self.capacity - self.level) / self.rate


@dataclass(slots=True)
class _Buckets:
    requests: _Bucket
    input_tokens: _Bucket
    output_tokens: _Bucket

    @classmethod
    def full(cls, limits: Limits, now: float) -> _Buckets:
        return cls(
            _Bucket(limits.requests_per_minute, limits.requests_per_minute, now),
            _Bucket(limits.input_tokens_per_minute, limits.input_tokens_per_minute, now),
            _Bucket(limits.output_tokens_per_minute, limits.output_tokens_per_minute, now),
        )

    def named(self) -> dict[BucketName, _Bucket]:
        return {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }

    def refill(self, now: float) -> None:
        for bucket in self.named().values():
            bucket.refill(now)


@dataclass(slots=True)
class Admission:
    """The verdict on one request, and the headers its response carries."""

    allowed: bool
    retry_after: float | None  # seconds until the binding bucket could admit it; None if never
    limited_by: BucketName | None
    headers: dict[str, str]
    _limiter: RateLimiter | None = field(default=None, repr=False)
    _buckets: _Buckets | None = field(default=None, repr=False)
    _estimate: int = field(default=0, repr=False)
    _settled: bool = field(default=False, repr=False)

    def settle(self, output_tokens: int) -> None:
        """Correct the output estimate with the tokens actually produced (once; a refusal ignores it)."""
        if not self.allowed or self._settled or self._limiter is None or self._buckets is None:
            return
        self._settled = True
        bucket = self._buckets.output_tokens
        bucket.refill(self._limiter.clock.now())
        bucket.level = min(bucket.capacity, bucket.level + self._estimate - output_tokens)


class RateLimiter:
    """Per-key, per-pool requests/input/output token buckets, driven by ``clock``."""

    def __init__(
        self,
        clock: Clock,
        default: Limits,
        per_model: dict[str, Limits] | None = None,
        *,
        pools: dict[str, str] | None = None,
        round_remaining: bool = True,
    ) -> None:
        self.clock = clock
        self.default = default
        self.per_model = dict(per_model or {})
        self.pools = dict(pools or {})
        self.round_remaining = round_remaining
        self._buckets: dict[tuple[str, str], _Buckets] = {}

    def limits_for(self, model: str) -> Limits:
        pool = self.pools.get(model, model)
        return self.per_model.get(model) or self.per_model.get(pool) or self.default

    def admit(self, key: str, model: str, input_tokens: int, max_tokens: int) -> Admission:
        """Admit and debit the request, or refuse it without debiting anything."""
        now = self.clock.now()
        buckets = self._current(key, model, now)
        estimate = min(max_tokens, int(buckets.output_tokens.capacity))
        needs: dict[BucketName, float] = {
            "requests": 1,
            "input_tokens": input_tokens,
            "output_tokens": estimate,
        }
        if input_tokens > buckets.input_tokens.capacity:
            return Admission(False, None, "input_tokens", self._headers(buckets, now))
        waits = {name: bucket.wait(needs[name]) for name, bucket in buckets.named().items()}
        binding = max(waits, key=lambda name: waits[name])
        if waits[binding] > 0:
            headers = self._headers(buckets, now)
            headers["retry-after"] = str(math.ceil(waits[binding] - EPSILON))
            return Admission(False, waits[binding], binding, headers)
        for name, bucket in buckets.named().items():
            bucket.level -= needs[name]
        return Admission(True, None, None, self._headers(buckets, now), self, buckets, estimate)

    def headers(self, key: str, model: str) -> dict[str, str]:
        """The 12 ``anthropic-ratelimit-*`` headers as the buckets stand now."""
        now = self.clock.now()
        return self._headers(self._current(key, model, now), now)

    def _current(self, key: str, model: str, now: float) -> _Buckets:
        pool = self.pools.get(model, model)
        buckets = self._buckets.get((key, pool))
        if buckets is None:
            buckets = self._buckets[(key, pool)] = _Buckets.full(self.limits_for(model), now)
        buckets.refill(now)
        return buckets

    def _headers(self, buckets: _Buckets, now: float) -> dict[str, str]:
        tighter = min(
            (buckets.input_tokens, buckets.output_tokens), key=lambda b: (b.level / b.capacity, b.level)
        )
        headers: dict[str, str] = {}
        for name, bucket in (
            ("requests", buckets.requests),
            ("tokens", tighter),
            ("input-tokens", buckets.input_tokens),
            ("output-tokens", buckets.output_tokens),
        ):
            prefix = f"anthropic-ratelimit-{name}"
            headers[f"{prefix}-limit"] = str(int(bucket.capacity))
            headers[f"{prefix}-remaining"] = str(self._remaining(bucket.level, name != "requests"))
            headers[f"{prefix}-reset"] = rfc3339(unix_time(self.clock, now + bucket.until_full()))
        return headers

    def _remaining(self, level: float, tokens: bool) -> int:
        exact = max(0, math.floor(level + EPSILON))
        if tokens and self.round_remaining:
            return math.floor(exact / 1000 + 0.5) * 1000
        return exact
