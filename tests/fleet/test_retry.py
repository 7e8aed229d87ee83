"""Retries against the fake Messages API's faults: what is retried, how long it waits, and streams.

The sleep is a recording fake (no real waiting); the stall test uses a real 0.5 s read timeout.
"""

from __future__ import annotations

import random

import pytest

from tether import AnthropicClient, Message, MessagesRequest
from tether.api.stream import MessageComplete, StreamRestart, TextDelta
from tether.errors import APIConnectionError, APIStatusError
from tether.fleet.retry import RetryingClient
from tether.testing import (
    ErrorResponse,
    Reset,
    ResetMidStream,
    Stall,
    StreamError,
    overloaded,
    rate_limited,
    server_error,
)

MODEL = "claude-opus-4-8"
LONG = "All work and no play makes a dull stream. " * 8


class Sleeps:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def ask(text: str = "hi", max_tokens: int = 400) -> MessagesRequest:
    return MessagesRequest(model=MODEL, max_tokens=max_tokens, messages=[Message.user(text)])


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def retrying(inner, sleeps: Sleeps, attempts: int = 4) -> RetryingClient:
    return RetryingClient(inner, attempts, base=0.5, cap=8.0, jitter=0.25, sleep=sleeps, rng=random.Random(1))


async def collect(client, request) -> list:
    return [event async for event in client.stream(request)]


FAULTS = {
    "429": rate_limited(retry_after=0.25),
    "529": overloaded(),
    "500": server_error(),
    "504": ErrorResponse(504, "timeout_error", "Gateway timeout"),
    "reset": Reset(),
}


@pytest.mark.parametrize("name", FAULTS)
@pytest.mark.parametrize("streaming", [False, True], ids=["create", "stream"])
async def test_each_retryable_fault_is_retried_until_the_call_succeeds(fake, key, api, sleeps, name, streaming):
    fake.fail_next(FAULTS[name], key=key)
    fake.script([LONG], key=key)
    client = retrying(api, sleeps)
    if streaming:
        events = await collect(client, ask())
        response = events[-1].response
    else:
        response = await client.create(ask())
    assert response.message.text == LONG
    assert [r.status for r in fake.requests_for(key)] == [FAULTS[name].status if name != "reset" else 0, 200]
    if name == "429":
        assert sleeps.slept == [0.25]  # retry-after, exactly
    else:
        assert len(sleeps.slept) == 1 and 0.375 <= sleeps.slept[0] <= 0.5


async def test_a_stream_that_fails_before_its_first_event_is_retried(fake, key, api, sleeps):
    fake.fail_next(ResetMidStream(after_events=0), StreamError(after_events=0), key=key)
    events = await collect(retrying(api, sleeps), ask(LONG))  # the fake echoes
    assert isinstance(events[-1], MessageComplete)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == LONG
    assert len(fake.requests_for(key)) == 3
    assert len(sleeps.slept) == 2


@pytest.mark.parametrize("fault", [ResetMidStream(after_events=4), StreamError(after_events=4)])
async def test_a_stream_that_fails_after_yielding_events_is_restarted_and_says_so(fake, key, api, sleeps, fault):
    fake.fail_next(fault, key=key)
    seen = [event async for event in retrying(api, sleeps).stream(ask(LONG))]
    restarts = [i for i, e in enumerate(seen) if isinstance(e, StreamRestart)]
    assert len(restarts) == 1 and restarts[0] > 0, "the first attempt's events came, then the restart"
    after = seen[restarts[0] + 1:]
    assert isinstance(after[-1], MessageComplete) and after[-1].response.message.text == LONG
    assert "".join(e.text for e in after if isinstance(e, TextDelta)) == LONG
    assert len(fake.requests_for(key)) == 2 and len(sleeps.slept) == 1


async def test_a_stream_that_keeps_failing_raises_after_its_attempts(fake, key, api, sleeps):
    fake.fail_next(*[ResetMidStream(after_events=4)] * 4, key=key)
    with pytest.raises(APIConnectionError):
        async for _ in retrying(api, sleeps).stream(ask(LONG)):
            pass
    assert len(fake.requests_for(key)) == 4


@pytest.mark.parametrize("fault", [ResetMidStream(after_events=4), StreamError(after_events=4)])
async def test_the_same_faults_are_retried_for_a_call_that_does_not_stream(fake, key, api, sleeps, fault):
    fake.fail_next(fault, key=key)
    response = await retrying(api, sleeps).create(ask(LONG))  # the fake echoes
    assert response.message.text == LONG
    assert len(fake.requests_for(key)) == 2


async def test_a_stalled_stream_times_out_and_is_retried(fake, key, sleeps):
    api = AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=0, timeout=0.5)
    fake.fail_next(Stall(seconds=5.0, after_events=0), key=key)
    try:
        events = await collect(retrying(api, sleeps), ask(LONG))  # the fake echoes
    finally:
        await api.aclose()
    assert events[-1].response.message.text == LONG
    assert len(fake.requests_for(key)) == 2


@pytest.mark.parametrize(
    "fault",
    [
        ErrorResponse(400, "invalid_request_error", "bad"),
        ErrorResponse(401, "authentication_error", "who?"),
        ErrorResponse(403, "permission_error", "no"),
        ErrorResponse(404, "not_found_error", "where?"),
        ErrorResponse(413, "request_too_large", "too big"),
        ErrorResponse(429, "rate_limit_error", "spend cap", retry_after=1.0, should_retry=False),
        ErrorResponse(529, "overloaded_error", "go away", should_retry=False),
    ],
    ids=["400", "401", "403", "404", "413", "429-should-retry-false", "529-should-retry-false"],
)
@pytest.mark.parametrize("streaming", [False, True], ids=["create", "stream"])
async def test_errors_that_will_not_succeed_later_pass_through_at_once(fake, key, api, sleeps, fault, streaming):
    fake.fail_next(fault, key=key)
    client = retrying(api, sleeps)
    with pytest.raises(APIStatusError) as caught:
        if streaming:
            await collect(client, ask())
        else:
            await client.create(ask())
    assert caught.value.status_code == fault.status
    assert len(fake.requests_for(key)) == 1
    assert sleeps.slept == []


async def test_retries_stop_after_the_last_attempt_with_its_error(fake, key, api, sleeps):
    fake.fail_next(overloaded(), overloaded(), server_error(), key=key)
    retried = []
    client = RetryingClient(api, 3, sleep=sleeps, rng=random.Random(0),
                            on_retry=lambda n, error, delay: retried.append((n, error.status_code)))
    with pytest.raises(APIStatusError) as caught:
        await client.create(ask())
    assert caught.value.status_code == 500
    assert len(fake.requests_for(key)) == 3
    assert retried == [(0, 529), (1, 529)]


async def test_a_retry_after_longer_than_the_maximum_is_raised(fake, key, api, sleeps):
    fake.fail_next(rate_limited(retry_after=3600), key=key)
    client = RetryingClient(api, 4, sleep=sleeps, max_retry_after=60)
    with pytest.raises(APIStatusError):
        await client.create(ask())
    assert sleeps.slept == []


def test_backoff_doubles_up_to_the_cap_with_jitter_below_it():
    client = RetryingClient(None, 10, base=0.5, cap=8.0, jitter=0.25, rng=random.Random(3))  # type: ignore[arg-type]
    error = APIConnectionError("reset")
    delays = [client.delay(error, n) for n in range(9)]
    for n, delay in enumerate(delays):
        ceiling = min(0.5 * 2**n, 8.0)
        assert 0.75 * ceiling <= delay <= ceiling
    assert client.delay(error, 9) is None  # no attempts left
    assert client.delay(ValueError("a bug"), 0) is None
