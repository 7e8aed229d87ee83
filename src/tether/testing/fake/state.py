"""What the fake remembers between requests: per-key settings (with a default) and a request log.

Every setting — behaviour, faults, latency, rate limits — is looked up for the request's API key
and, when that key has none of its own, taken from the default (key ``None``). So concurrent tests
or runs, each with its own key, never see each other's scripts or faults.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tether.testing.fake.behaviour import Behaviour, Script
from tether.testing.fake.clock import Clock
from tether.testing.fake.faults import FaultSchedule
from tether.testing.fake.ratelimit import Limits, RateLimiter

T = TypeVar("T")

# Generous enough that nothing is throttled unless a test asks for it.
DEFAULT_LIMITS = Limits(
    requests_per_minute=100_000, input_tokens_per_minute=100_000_000, output_tokens_per_minute=20_000_000
)


@dataclass(frozen=True, slots=True)
class Latency:
    """Real (wall-clock) delays: before ``message_start``, and per output token streamed."""

    first_token: float = 0.0
    per_token: float = 0.0


@dataclass(slots=True)
class RecordedRequest:
    """One request as it arrived: the exact bytes and headers, and the status it got."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    key: str
    request_id: str
    received_at: float  # the fake's clock
    status: int | None = None  # as sent; 0: the connection was reset; None: nothing sent (yet)

    def header(self, name: str) -> str | None:
        name = name.lower()
        values = [v for k, v in self.headers if k == name]
        return ", ".join(values) if values else None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Registry:
    clock: Clock
    behaviours: dict[str | None, Behaviour] = field(default_factory=dict)
    faults: dict[str | None, FaultSchedule] = field(default_factory=dict)
    latencies: dict[str | None, Latency] = field(default_factory=dict)
    limiters: dict[str | None, RateLimiter] = field(default_factory=dict)
    records: deque[RecordedRequest] = field(default_factory=deque)

    @classmethod
    def create(
        cls,
        clock: Clock,
        behaviour: Behaviour | None = None,
        limits: Limits | None = None,
        record_limit: int | None = None,
    ) -> Registry:
        return cls(
            clock,
            behaviours={None: behaviour or Script()},
            faults={None: FaultSchedule()},
            latencies={None: Latency()},
            limiters={None: RateLimiter(clock, limits or DEFAULT_LIMITS)},
            records=deque(maxlen=record_limit),
        )

    @staticmethod
    def _pick(table: dict[str | None, T], key: str | None) -> T:
        return table[key] if key in table else table[None]

    def behaviour(self, key: str | None) -> Behaviour:
        return self._pick(self.behaviours, key)

    def fault_schedule(self, key: str | None, create: bool = False) -> FaultSchedule:
        if create and key not in self.faults:
            self.faults[key] = FaultSchedule()
        return self._pick(self.faults, key)

    def latency(self, key: str | None) -> Latency:
        return self._pick(self.latencies, key)

    def limiter(self, key: str | None) -> RateLimiter:
        return self._pick(self.limiters, key)

    def requests(self, key: str | None = None) -> list[RecordedRequest]:
        records = list(self.records)
        return records if key is None else [r for r in records if r.key == key]
