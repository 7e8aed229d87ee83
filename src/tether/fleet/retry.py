"""Retries of model calls: exponential backoff with jitter, ``retry-after`` honoured.

``RetryingClient`` retries what the API says may succeed later: 429, 529, 5xx, 408 and 409
(``APIStatusError.retryable``, which also obeys ``x-should-retry``), connection errors and
timeouts (``APIConnectionError``), and errors inside a stream (an ``event: error`` of a retryable
type, or the connection cut mid-stream). 400, 401, 403, 404, 413 and anything with
``x-should-retry: false`` pass through at once. The wait before retry ``n`` (0-based) is the
error's ``retry-after`` when it has one (up to ``max_retry_after``; longer, the error is raised),
else ``min(base * 2**n, cap) * (1 - jitter * random())``, the SDK's formula (``tether.api.client.backoff``,
which ``AnthropicClient`` follows too when it retries a stream that has not started).

It only ever sees model calls, so a retry repeats a model call, never a tool call. Build the
``AnthropicClient`` underneath with ``max_retries=0`` so that it does not retry as well.

**Streams.** A stream that fails before its first event is retried silently. One that fails after
some events were yielded is retried too, announced by a ``StreamRestart`` event: the consumer
drops what it got from the failed attempt (the agent loop does, and tells its own consumers with a
``stream_restarted`` warning) and the new attempt's events follow from ``MessageStart``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from tether.api.client import ModelClient, backoff
from tether.api.stream import StreamEvent, StreamRestart
from tether.api.types import MessagesRequest, Response
from tether.errors import APIConnectionError, APIStatusError

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[object]]
OnRetry = Callable[[int, BaseException, float], None]


@contextlib.asynccontextmanager
async def closing_stream(stream: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Use ``stream``, and close it on the way out (an async generator left open holds its connection)."""
    try:
        yield stream
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


class RetryingClient:
    """A ``ModelClient`` that retries ``inner``'s failed calls, up to ``attempts`` calls in all.

    ``on_retry(retry_number, error, delay)`` is told of each retry (for metrics); ``sleep`` and
    ``rng`` are injectable for tests.
    """

    def __init__(
        self,
        inner: ModelClient,
        attempts: int = 4,
        base: float = 0.5,
        cap: float = 8.0,
        jitter: float = 0.25,
        *,
        max_retry_after: float = 60.0,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        on_retry: OnRetry | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError("jitter must be within [0, 1]")
        self.inner = inner
        self.attempts, self.base, self.cap, self.jitter = attempts, base, cap, jitter
        self.max_retry_after = max_retry_after
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.on_retry = on_retry

    def delay(self, error: BaseException, retry: int) -> float | None:
        """Seconds to wait before retry number ``retry`` (0-based) after ``error``; None: do not retry."""
        if retry + 1 >= self.attempts:
            return None
        return backoff(error, retry, base=self.base, cap=self.cap, jitter=self.jitter,
                       max_retry_after=self.max_retry_after, rng=self.rng)

    async def _wait(self, error: BaseException, retry: int) -> None:
        delay = self.delay(error, retry)
        if delay is None:
            raise error
        if self.on_retry is not None:
            self.on_retry(retry, error, delay)
        await self.sleep(delay)

    async def stream(self, request: MessagesRequest) -> AsyncIterator[StreamEvent]:
        for retry in range(self.attempts):
            started = False
            try:
                async with closing_stream(self.inner.stream(request)) as events:
                    async for event in events:
                        started = True
                        yield event
                return
            except (APIStatusError, APIConnectionError) as exc:
                error = exc
            await self._wait(error, retry)
            if started:
                yield StreamRestart(retry + 1, str(error))

    async def create(self, request: MessagesRequest) -> Response:
        return await self._call(lambda: self.inner.create(request))

    async def count_tokens(self, request: MessagesRequest) -> int:
        return await self._call(lambda: self.inner.count_tokens(request))

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        for retry in range(self.attempts):
            try:
                return await call()
            except (APIStatusError, APIConnectionError) as exc:
                error = exc
            await self._wait(error, retry)
        raise AssertionError("unreachable")  # the last attempt raises in _wait

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()
