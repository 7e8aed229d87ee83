"""Rate limiting the way the Messages API counts: requests, input and output tokens per minute.

``RateLimiter`` holds one set of continuously refilled buckets per API key and model pool (in a
``BucketStore``, see ``buckets``); ``RateLimitedClient`` asks it to admit every call before the call
is sent. The rules follow reference §5:

- **Admission.** A call needs 1 request, its estimated input tokens and an output reservation of
  ``max_tokens`` (capped at the OTPM limit, as the API caps it). Input is estimated with
  ``tether.api.tokens.count_request``, minus the prefix the call is expected to read from the
  cache, since cache reads do not count toward ITPM. The expected read is the prompt up to the
  previous call of the same conversation (the request's messages without its last two: the
  previous reply and the user turn after it), when the request carries a cache plan whose first
  breakpoint lies within that prefix. A run's first call is counted whole.
- **Settling.** When a stream starts (``MessageStart``) the input reservation is corrected to the
  real ``input_tokens + cache_creation_input_tokens``; at the end the output reservation is
  corrected to the real ``output_tokens``. A 429 gives the whole reservation back (the API did
  not count it); another failure gives the output reservation back.
- **The server's truth wins.** Every response's ``anthropic-ratelimit-*`` headers set each
  bucket's capacity (``limit``) and cap its level: the header's ``remaining`` (token values are
  rounded to the nearest thousand, so half of that is taken off), plus what has refilled since
  the call was admitted and what this limiter gave back since. ``reset`` stands in when
  ``remaining`` is missing. Corrections only lower a level: a snapshot taken at the server is
  already stale when it arrives, and raising a level from it would count twice what is in flight.
- **A 429 pauses the bucket** until its ``retry-after``, so every waiter waits once, together,
  instead of each run retrying on its own.
- **Fair waiting.** Waiters of one key queue by priority, then arrival (FIFO). Only the head of
  the queue asks the store; it sleeps exactly until the buckets will hold its amounts (waking early
  when a settlement gives tokens back), and the others wait for their turn. Nothing polls.

Limits need not be configured: a bucket whose limit is unknown does not constrain until the first
response's headers tell its limit. Configure them (``RateLimits``) to pace the very first calls.

Cancellation: cancelling a waiting call removes it from the queue; cancelling a call in flight
gives its output reservation back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from tether.api.client import ModelClient
from tether.api.stream import MessageComplete, MessageStart, StreamEvent
from tether.api.tokens import count_request
from tether.api.types import MessagesRequest, Response, Usage
from tether.errors import APIStatusError, RequestError
from tether.fleet.buckets import BUCKETS, BucketStore, MemoryBuckets, Observed
from tether.fleet.retry import closing_stream

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]
HEADER_NAMES = {"requests": "requests", "input_tokens": "input-tokens", "output_tokens": "output-tokens"}


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Per-minute limits of one model pool (None: learn it from the response headers)."""

    requests_per_minute: float | None = None
    input_tokens_per_minute: float | None = None
    output_tokens_per_minute: float | None = None

    def observed(self) -> dict[str, Observed]:
        limits = (self.requests_per_minute, self.input_tokens_per_minute, self.output_tokens_per_minute)
        return {name: Observed(limit=limit) for name, limit in zip(BUCKETS, limits, strict=True) if limit}


def expected_cache_read(request: MessagesRequest, body: dict | None = None) -> int:
    """Prompt tokens the request should read from the cache (see the module docstring)."""
    plan = request.cache
    if plan is None or not plan.breakpoints or len(request.messages) < 3:
        return 0
    body = body if body is not None else request.body()
    previous = body["messages"][:-2]
    blocks = len(body.get("tools") or ()) + len(body.get("system") or ())
    blocks += sum(len(m["content"]) if isinstance(m["content"], list) else 1 for m in previous)
    if blocks - 1 < plan.breakpoints[0]:  # the previous prefix was under the minimum cacheable length
        return 0
    return count_request({**body, "messages": previous})


def estimate_input(request: MessagesRequest) -> int:
    """Input tokens the API will count toward ITPM: the prompt, less what it should read from the cache."""
    body = request.body()
    return max(1, count_request(body) - expected_cache_read(request, body))


@dataclass(order=True)
class _Waiter:
    rank: tuple[int, int]
    turn: asyncio.Event = field(default_factory=asyncio.Event, compare=False)
    gone: bool = field(default=False, compare=False)


@dataclass
class _Lane:
    """One key's queue of waiters, and what this limiter knows of its buckets."""

    queue: list[_Waiter] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    capacity: dict[str, float] | None = None  # None: not read from the store yet
    given: dict[str, float] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0.0))

    def head(self) -> _Waiter | None:
        while self.queue and self.queue[0].gone:
            heapq.heappop(self.queue)
        return self.queue[0] if self.queue else None


class RateLimiter:
    """Admission for every call made with one API key, by model pool.

    ``key`` names the API key (a label or a hash, never the key itself). ``pools`` maps model ids
    to a shared pool name where the API pools models; ``limits`` gives the per-minute limits,
    one ``RateLimits`` for every pool or a mapping by pool (or model id). ``clock`` and ``sleep``
    are injectable, so tests can run on a manual clock.
    """

    def __init__(
        self,
        store: BucketStore | None = None,
        *,
        key: str = "default",
        limits: RateLimits | Mapping[str, RateLimits] | None = None,
        pools: Mapping[str, str] | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        wall: Clock = time.time,
        remaining_rounding: float = 1000.0,
    ) -> None:
        self.store: BucketStore = store if store is not None else MemoryBuckets()
        self.key = key
        self.limits = limits
        self.pools = dict(pools or {})
        self.clock, self.sleep, self.wall = clock, sleep, wall
        self.rounding = remaining_rounding
        self._lanes: dict[str, _Lane] = {}
        self._order = itertools.count()

    def pool(self, model: str) -> str:
        return self.pools.get(model, model)

    def bucket_key(self, model: str) -> str:
        return f"{self.key}/{self.pool(model)}"

    def _configured(self, model: str) -> RateLimits | None:
        if self.limits is None or isinstance(self.limits, RateLimits):
            return self.limits
        return self.limits.get(model) or self.limits.get(self.pool(model))

    async def _lane(self, model: str) -> tuple[str, _Lane]:
        key = self.bucket_key(model)
        lane = self._lanes.setdefault(key, _Lane())
        if lane.capacity is None:
            configured = self._configured(model)
            lane.capacity = await self.store.correct(key, configured.observed() if configured else {}, self.clock())
        return key, lane

    async def admit(self, request: MessagesRequest, *, priority: int = 0) -> Ticket:
        """Wait until ``request`` may be sent; the ticket settles it when it ends."""
        key, lane = await self._lane(request.model)
        output = float(request.max_tokens)
        if "output_tokens" in (lane.capacity or {}):
            output = min(output, lane.capacity["output_tokens"])  # type: ignore[index]
        amounts = {"requests": 1.0, "input_tokens": float(estimate_input(request)), "output_tokens": output}
        await self._acquire(key, lane, amounts, priority)
        return Ticket(self, key, lane, amounts, self.clock(), dict(lane.given))

    async def _acquire(self, key: str, lane: _Lane, amounts: dict[str, float], priority: int) -> None:
        me = _Waiter((-priority, next(self._order)))
        heapq.heappush(lane.queue, me)
        try:
            while True:
                if lane.head() is not me:
                    me.turn.clear()
                    await me.turn.wait()
                    continue
                wait = await self.store.take(key, amounts, self.clock())
                if wait <= 0:
                    return
                if math.isinf(wait):
                    raise RequestError(
                        f"this request can never pass the rate limits of {key}: it needs "
                        f"{amounts['input_tokens']:.0f} input tokens, more than a whole minute's limit "
                        f"{lane.capacity}; shorten the prompt or raise the limit"
                    )
                await self._nap(lane, wait)
        finally:
            me.gone = True
            head = lane.head()
            if head is not None:
                head.turn.set()

    async def _nap(self, lane: _Lane, seconds: float) -> None:
        """Sleep ``seconds``, or less if tokens are given back meanwhile."""
        lane.changed.clear()
        nap = asyncio.ensure_future(self.sleep(seconds))
        poke = asyncio.ensure_future(lane.changed.wait())
        try:
            await asyncio.wait((nap, poke), return_when=asyncio.FIRST_COMPLETED)
        finally:
            nap.cancel()
            poke.cancel()
            await asyncio.wait((nap, poke))

    async def give(self, key: str, lane: _Lane, amounts: Mapping[str, float]) -> None:
        amounts = {name: amount for name, amount in amounts.items() if amount}
        if not amounts:
            return
        await self.store.give(key, amounts, self.clock())
        for name, amount in amounts.items():
            if amount > 0:
                lane.given[name] += amount
        lane.changed.set()

    async def pause(self, key: str, seconds: float) -> None:
        await self.store.pause(key, seconds, self.clock())

    async def observe(self, ticket: Ticket, headers: Mapping[str, str]) -> None:
        """Correct the buckets from a response's ``anthropic-ratelimit-*`` headers."""
        now = self.clock()
        observed: dict[str, Observed] = {}
        for name, header in HEADER_NAMES.items():
            seen = self._observed(headers, header, name, ticket, now)
            if seen is not None:
                observed[name] = seen
        if observed:
            ticket.lane.capacity = await self.store.correct(ticket.key, observed, now)
            ticket.lane.changed.set()

    def _observed(
        self, headers: Mapping[str, str], header: str, name: str, ticket: Ticket, now: float
    ) -> Observed | None:
        limit = _number(headers.get(f"anthropic-ratelimit-{header}-limit"))
        if not limit:
            return None
        remaining = _number(headers.get(f"anthropic-ratelimit-{header}-remaining"))
        rate = limit / 60.0
        if remaining is not None:
            slack = 0.0 if name == "requests" else self.rounding / 2
            level = max(0.0, remaining - slack)
        else:
            reset = _instant(headers.get(f"anthropic-ratelimit-{header}-reset"))
            if reset is None:
                return Observed(limit=limit)
            level = max(0.0, limit - rate * (reset - self.wall()))
        since = max(0.0, now - ticket.admitted)
        ceiling = level + rate * since + (ticket.lane.given[name] - ticket.given[name])
        return Observed(limit=limit, ceiling=ceiling)

    def levels(self, model: str) -> dict[str, tuple[float, float]]:
        """``{bucket: (level, capacity)}`` for ``model``'s pool, if the store is in this process."""
        store = self.store
        if not isinstance(store, MemoryBuckets):
            raise TypeError("levels() reads only a MemoryBuckets store")
        return store.levels(self.bucket_key(model), self.clock())


class Ticket:
    """One admitted call: corrects its reservation as the call goes, once each."""

    def __init__(
        self, limiter: RateLimiter, key: str, lane: _Lane, amounts: dict[str, float], admitted: float,
        given: dict[str, float],
    ) -> None:
        self.limiter, self.key, self.lane = limiter, key, lane
        self.amounts, self.admitted, self.given = amounts, admitted, given
        self.input_settled = False
        self.done = False

    async def started(self, usage: Usage) -> None:
        if self.input_settled:
            return
        self.input_settled = True
        counted = usage.input_tokens + usage.cache_creation_input_tokens
        await self.limiter.give(self.key, self.lane, {"input_tokens": self.amounts["input_tokens"] - counted})

    async def finished(self, response: Response) -> None:
        if self.done:
            return
        await self.started(response.usage)
        self.done = True
        output = self.amounts["output_tokens"] - response.usage.output_tokens
        await self.limiter.give(self.key, self.lane, {"output_tokens": output})
        await self.limiter.observe(self, response.headers)

    async def failed(self, error: BaseException | None) -> None:
        """The call ended without a response: a 429 gives everything back, the rest the output."""
        if self.done:
            return
        self.done = True
        if isinstance(error, APIStatusError) and error.status_code == 429:
            back = dict(self.amounts)
            if self.input_settled:
                back.pop("input_tokens")
            await self.limiter.give(self.key, self.lane, back)
            if error.retry_after:
                await self.limiter.pause(self.key, error.retry_after)
            return
        await self.limiter.give(self.key, self.lane, {"output_tokens": self.amounts["output_tokens"]})


class RateLimitedClient:
    """A ``ModelClient`` whose every call is admitted by ``limiter`` first (``priority``: higher first)."""

    def __init__(self, inner: ModelClient, limiter: RateLimiter, *, priority: int = 0) -> None:
        self.inner, self.limiter, self.priority = inner, limiter, priority

    async def stream(self, request: MessagesRequest) -> AsyncIterator[StreamEvent]:
        ticket = await self.limiter.admit(request, priority=self.priority)
        try:
            async with closing_stream(self.inner.stream(request)) as events:
                async for event in events:
                    if isinstance(event, MessageStart):
                        await ticket.started(event.usage)
                    elif isinstance(event, MessageComplete):
                        await ticket.finished(event.response)
                    yield event
        except BaseException as exc:
            await ticket.failed(exc)
            raise
        await ticket.failed(None)  # a stream that ended without MessageComplete

    async def create(self, request: MessagesRequest) -> Response:
        ticket = await self.limiter.admit(request, priority=self.priority)
        try:
            response = await self.inner.create(request)
        except BaseException as exc:
            await ticket.failed(exc)
            raise
        await ticket.finished(response)
        return response

    async def count_tokens(self, request: MessagesRequest) -> int:
        return await self.inner.count_tokens(request)

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _instant(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
