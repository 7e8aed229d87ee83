"""The rate limiter: bucket arithmetic, estimates, header corrections, 429 pauses, fair waiting.

Against the fake Messages API on loopback; the limiter and the fake share one ``ManualClock``, and
the limiter's sleep moves that clock, so waiting a minute takes no time.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from tether import AnthropicClient, Message, MessagesRequest, TextBlock
from tether.api.caching import CachePlanner
from tether.api.catalog import default_catalog
from tether.api.tokens import count_request
from tether.errors import APIStatusError, RequestError
from tether.fleet.buckets import MemoryBuckets, Observed
from tether.fleet.ratelimit import RateLimitedClient, RateLimiter, RateLimits, estimate_input
from tether.testing import Limits, ManualClock, rate_limited

MODEL = "claude-opus-4-8"


class Recording:
    """A ``ModelClient`` that notes the order in which calls reach it and how many are under way."""

    def __init__(self, inner) -> None:
        self.inner, self.order, self.flying = inner, [], 0

    async def stream(self, request):
        self.order.append(request.messages[-1].text)
        self.flying += 1
        try:
            async for event in self.inner.stream(request):
                yield event
        finally:
            self.flying -= 1

    async def create(self, request):
        self.order.append(request.messages[-1].text)
        self.flying += 1
        try:
            return await self.inner.create(request)
        finally:
            self.flying -= 1

    async def count_tokens(self, request):
        return await self.inner.count_tokens(request)


class FakeTime:
    """A sleep that moves the manual clock instead of waiting. It first lets the calls under way
    reach the fake, as real time would: a request must not arrive a simulated minute late."""

    def __init__(self, clock: ManualClock, calls: Recording) -> None:
        self.clock, self.calls = clock, calls
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        while self.calls.flying:
            await asyncio.sleep(0.001)
        self.clock.advance(max(seconds, 0.0))
        await asyncio.sleep(0)


def ask(text: str = "hi", max_tokens: int = 100) -> MessagesRequest:
    return MessagesRequest(model=MODEL, max_tokens=max_tokens, messages=[Message.user(text)])


@pytest.fixture
async def api(fake, key):
    client = AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=0)
    yield Recording(client)
    await client.aclose()


@pytest.fixture
def time_(fake, api) -> FakeTime:
    return FakeTime(fake.clock, api)


def limiter_for(fake, key, time_, **options) -> RateLimiter:
    return RateLimiter(key=key, clock=fake.clock.now, sleep=time_.sleep, **options)


# --- bucket arithmetic ---------------------------------------------------------------------------

async def test_a_bucket_refills_continuously_and_takes_all_or_nothing():
    store = MemoryBuckets()
    await store.correct("k", {"requests": Observed(limit=60), "input_tokens": Observed(limit=600)}, 0.0)
    assert await store.take("k", {"requests": 1, "input_tokens": 500}, 0.0) == 0.0
    # 100 input tokens left, refilling at 10/s: 300 more need 30 s; nothing is debited meanwhile
    assert await store.take("k", {"requests": 1, "input_tokens": 400}, 0.0) == pytest.approx(30.0)
    assert store.levels("k", 0.0) == {"requests": (59.0, 60.0), "input_tokens": (100.0, 600.0)}
    assert await store.take("k", {"requests": 1, "input_tokens": 400}, 30.0) == 0.0
    assert store.levels("k", 30.0)["input_tokens"][0] == pytest.approx(0.0)
    # a bucket never holds more than its capacity
    assert store.levels("k", 1_000.0) == {"requests": (60.0, 60.0), "input_tokens": (600.0, 600.0)}


async def test_an_amount_over_capacity_never_passes_and_unknown_buckets_do_not_constrain():
    store = MemoryBuckets()
    assert await store.take("k", {"requests": 1, "input_tokens": 10**9}, 0.0) == 0.0
    await store.correct("k", {"input_tokens": Observed(limit=1000)}, 0.0)
    assert math.isinf(await store.take("k", {"input_tokens": 1001}, 0.0))


async def test_give_refunds_up_to_capacity_or_charges_into_debt():
    store = MemoryBuckets()
    await store.correct("k", {"output_tokens": Observed(limit=600)}, 0.0)
    await store.take("k", {"output_tokens": 500}, 0.0)
    await store.give("k", {"output_tokens": 1_000}, 0.0)
    assert store.levels("k", 0.0)["output_tokens"] == (600.0, 600.0)
    await store.give("k", {"output_tokens": -700}, 0.0)
    assert store.levels("k", 0.0)["output_tokens"][0] == -100.0
    assert await store.take("k", {"output_tokens": 100}, 0.0) == pytest.approx(20.0)


async def test_corrections_set_the_capacity_and_only_lower_the_level():
    store = MemoryBuckets()
    capacities = await store.correct("k", {"requests": Observed(limit=100, ceiling=40)}, 0.0)
    assert capacities == {"requests": 100.0}
    assert store.levels("k", 0.0)["requests"] == (40.0, 100.0)
    await store.correct("k", {"requests": Observed(limit=100, ceiling=90)}, 0.0)
    assert store.levels("k", 0.0)["requests"] == (40.0, 100.0)
    await store.correct("k", {"requests": Observed(limit=30, ceiling=None)}, 0.0)
    assert store.levels("k", 0.0)["requests"] == (30.0, 30.0)
    assert await store.correct("k", {}, 0.0) == {"requests": 30.0}


async def test_a_pause_holds_every_take_and_only_extends():
    store = MemoryBuckets()
    await store.pause("k", 5.0, 10.0)
    await store.pause("k", 1.0, 10.0)
    assert await store.take("k", {"requests": 1}, 12.0) == pytest.approx(3.0)
    assert await store.take("k", {"requests": 1}, 15.0) == 0.0


# --- estimates -----------------------------------------------------------------------------------

async def test_the_input_estimate_leaves_out_the_cache_read_and_matches_what_the_api_counts(api):
    info = default_catalog().get(MODEL)
    planner = CachePlanner(info)
    system = [TextBlock("You are careful and brief. " * 200)]
    messages = [Message.user("first question " * 10)]
    for turn in range(3):
        request = MessagesRequest(model=MODEL, max_tokens=100, messages=list(messages), system=system)
        request.cache = planner.plan(request.body())
        response = await api.create(request)
        counted = response.usage.input_tokens + response.usage.cache_creation_input_tokens
        assert estimate_input(request) == counted
        if turn:
            assert response.usage.cache_read_input_tokens > 0
            assert estimate_input(request) < count_request(request.body())
        messages += [Message("assistant", response.content), Message.user(f"and then {turn}? " * 10)]


# --- corrections from the headers ----------------------------------------------------------------

async def test_limits_are_learned_from_the_headers_and_pace_later_calls(fake, key, api, time_):
    fake.set_limits(Limits(6, 100_000, 100_000), key=key)
    limiter = limiter_for(fake, key, time_)
    client = RateLimitedClient(api, limiter)
    await client.create(ask("one"))  # nothing known yet: not held
    level, capacity = limiter.levels(MODEL)["requests"]
    assert (level, capacity) == (5.0, 6.0)
    for n in range(8):
        await client.create(ask(f"more {n}"))
    assert [r.status for r in fake.requests_for(key)] == [200] * 9
    assert sum(time_.slept) == pytest.approx(30.0, abs=0.01)  # 3 calls past the 6 of the first minute


async def test_configured_limits_that_are_too_generous_are_corrected_by_the_server(fake, key, api, time_):
    fake.set_limits(Limits(3, 100_000, 100_000), key=key)
    limiter = limiter_for(fake, key, time_, limits=RateLimits(requests_per_minute=600))
    client = RateLimitedClient(api, limiter)
    await client.create(ask())
    assert limiter.levels(MODEL)["requests"] == (2.0, 3.0)
    for _ in range(4):
        await client.create(ask())
    assert [r.status for r in fake.requests_for(key)] == [200] * 5


async def test_tokens_spent_elsewhere_with_the_same_key_lower_the_level(fake, key, api, time_):
    fake.set_limits(Limits(1000, 20_000, 100_000), key=key)
    limiter = limiter_for(fake, key, time_)
    client = RateLimitedClient(api, limiter)
    await client.create(ask())
    level_before = limiter.levels(MODEL)["input_tokens"][0]
    await api.create(ask("x" * 40_000))  # 10,000 input tokens, not through the limiter
    await client.create(ask())
    level, capacity = limiter.levels(MODEL)["input_tokens"]
    assert capacity == 20_000
    assert level <= level_before - 9_000  # remaining is rounded to the thousand: within 500, less 500


async def test_output_is_reserved_at_max_tokens_and_settled_at_the_real_output(fake, key, api, time_):
    fake.set_limits(Limits(1000, 100_000, 6_000), key=key)
    fake.script(["short answer"], key=key)
    limiter = limiter_for(fake, key, time_)
    client = RateLimitedClient(api, limiter)
    await client.create(ask())  # learns the limits
    response = await client.create(ask(max_tokens=5_000))
    level, capacity = limiter.levels(MODEL)["output_tokens"]
    assert capacity == 6_000
    # the reservation of 5,000 came back but for the tokens produced (and the rounding's half thousand)
    assert level >= 6_000 - 500 - 2 * response.usage.output_tokens - 1_000
    # a max_tokens above the OTPM limit is reserved at the limit, as the API does, and passes
    await client.create(ask(max_tokens=50_000))
    assert [r.status for r in fake.requests_for(key)] == [200] * 3


async def test_a_request_over_a_whole_minute_of_input_is_refused_before_sending(fake, key, api, time_):
    limiter = limiter_for(fake, key, time_, limits=RateLimits(input_tokens_per_minute=100))
    with pytest.raises(RequestError, match="can never pass"):
        await RateLimitedClient(api, limiter).create(ask("x" * 2_000))
    assert fake.requests_for(key) == []


# --- 429: one pause for everyone ------------------------------------------------------------------

async def test_a_429_pauses_every_waiter_until_retry_after(fake, key, api, time_):
    limiter = limiter_for(fake, key, time_)
    client = RateLimitedClient(api, limiter)
    fake.fail_next(rate_limited(retry_after=7), key=key)
    with pytest.raises(APIStatusError) as caught:
        await client.create(ask("refused"))
    assert caught.value.status_code == 429
    refused_at = fake.requests_for(key)[0].received_at
    await asyncio.gather(*(client.create(ask(f"waiter {n}")) for n in range(5)))
    later = fake.requests_for(key)[1:]
    assert [r.status for r in later] == [200] * 5
    assert all(r.received_at >= refused_at + 7 for r in later)
    assert time_.slept == [pytest.approx(7.0)]  # one sleep, by the head of the queue; the rest queued


async def test_a_429_gives_the_reservation_back(fake, key, api, time_):
    fake.set_limits(Limits(10, 100_000, 100_000), key=key)
    limiter = limiter_for(fake, key, time_)
    client = RateLimitedClient(api, limiter)
    await client.create(ask())
    before = limiter.levels(MODEL)["requests"][0]
    fake.fail_next(rate_limited(retry_after=None), key=key)
    with pytest.raises(APIStatusError):
        await client.create(ask())
    assert limiter.levels(MODEL)["requests"][0] == before


# --- fair waiting ----------------------------------------------------------------------------------

async def test_waiters_are_served_first_come_first_served_with_priority_first(fake, key, api, time_):
    fake.set_limits(Limits(2, 100_000, 100_000), key=key)
    recording = api
    limiter = limiter_for(fake, key, time_)
    await RateLimitedClient(recording, limiter).create(ask("learn"))
    tasks = []
    for n in range(5):
        tasks.append(asyncio.create_task(RateLimitedClient(recording, limiter).create(ask(f"fifo {n}"))))
        await asyncio.sleep(0)
    tasks.append(asyncio.create_task(RateLimitedClient(recording, limiter, priority=5).create(ask("urgent"))))
    await asyncio.gather(*tasks)
    assert recording.order == ["learn", "fifo 0", "urgent", "fifo 1", "fifo 2", "fifo 3", "fifo 4"]
    assert [r.status for r in fake.requests_for(key)] == [200] * 7


async def test_a_cancelled_waiter_leaves_the_queue(fake, key, api, time_):
    fake.set_limits(Limits(1, 100_000, 100_000), key=key)
    blocked = asyncio.Event()

    async def stuck(seconds: float) -> None:
        blocked.set()
        await asyncio.Event().wait()  # sleeps until cancelled

    limiter = RateLimiter(key=key, clock=fake.clock.now, sleep=stuck)
    client = RateLimitedClient(api, limiter)
    await client.create(ask())
    head = asyncio.create_task(client.create(ask("head")))
    await blocked.wait()
    second = asyncio.create_task(client.create(ask("second")))
    await asyncio.sleep(0.01)
    head.cancel()
    with pytest.raises(asyncio.CancelledError):
        await head
    blocked.clear()
    await blocked.wait()  # the second waiter is now at the head, sleeping for its turn
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert len(fake.requests_for(key)) == 1


async def test_many_tasks_share_the_limits_without_a_single_429(fake, key, api, time_):
    fake.set_limits(Limits(20, 3_000, 20_000), key=key)
    limiter = limiter_for(fake, key, time_)
    await RateLimitedClient(api, limiter).create(ask("learn"))

    async def run(n: int) -> None:
        client = RateLimitedClient(api, limiter)
        request = ask(f"task {n} " + "y" * (40 * (n % 7)), max_tokens=500)
        if n % 2:
            async for _ in client.stream(request):
                pass
        else:
            await client.create(request)

    await asyncio.gather(*(run(n) for n in range(40)))
    statuses = [r.status for r in fake.requests_for(key)]
    assert statuses == [200] * 41
