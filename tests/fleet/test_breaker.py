"""The circuit breaker against the fake Messages API: what opens it, fast failure, probes, states."""

from __future__ import annotations

import asyncio

import pytest

from tether import Message, MessagesRequest
from tether.errors import APIConnectionError, APIStatusError
from tether.fleet.breaker import Breakers, CircuitBreakerClient, CircuitOpen
from tether.fleet.retry import RetryingClient
from tether.testing import (
    ErrorResponse,
    ManualClock,
    Reset,
    StreamError,
    overloaded,
    rate_limited,
    server_error,
)

MODEL = "claude-opus-4-8"


def ask(text: str = "hi") -> MessagesRequest:
    return MessagesRequest(model=MODEL, max_tokens=200, messages=[Message.user(text)])


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def breaker(api, clock, **policy) -> CircuitBreakerClient:
    return CircuitBreakerClient(api, Breakers(threshold=3, cooldown=10.0, clock=clock.now, **policy))


async def fail(client, streaming: bool = False) -> BaseException:
    with pytest.raises((APIStatusError, APIConnectionError)) as caught:
        if streaming:
            async for _ in client.stream(ask()):
                pass
        else:
            await client.create(ask())
    return caught.value


async def test_consecutive_outages_open_the_circuit_and_later_calls_fail_fast(fake, key, api, clock):
    client = breaker(api, clock)
    fake.fail_next(overloaded(), server_error(), Reset(), key=key)
    for _ in range(3):
        await fail(client)
    [(name, state)] = client.states().items()
    assert name == f"{MODEL}@{fake.base_url}" and state == "open"
    with pytest.raises(CircuitOpen) as caught:
        await client.create(ask())
    error = caught.value
    assert error.category == "api_error" and not error.retryable
    assert error.model == MODEL and error.retry_in == pytest.approx(10.0)
    assert MODEL in str(error) and "next probe goes in 10.0s" in str(error)
    assert "last: APIConnectionError" in str(error)  # the reset of the third call
    assert len(fake.requests_for(key)) == 3  # the fourth call was not sent


async def test_an_error_event_inside_a_stream_counts_as_an_outage(fake, key, api, clock):
    client = breaker(api, clock)
    fake.fail_next(*(StreamError(after_events=2) for _ in range(3)), key=key)
    for _ in range(3):
        await fail(client, streaming=True)
    assert client.states()[f"{MODEL}@{fake.base_url}"] == "open"


@pytest.mark.parametrize(
    "fault",
    [ErrorResponse(400, "invalid_request_error", "bad"), rate_limited(retry_after=None),
     ErrorResponse(404, "not_found_error", "where?")],
    ids=["400", "429", "404"],
)
async def test_refusals_do_not_open_the_circuit(fake, key, api, clock, fault):
    client = breaker(api, clock)
    fake.fail_next(*([fault] * 5), key=key)
    for _ in range(5):
        await fail(client)
    assert set(client.states().values()) == {"closed"}
    await client.create(ask())


async def test_a_success_resets_the_count(fake, key, api, clock):
    client = breaker(api, clock)
    fake.fail_next(overloaded(), overloaded(), key=key)
    await fail(client)
    await fail(client)
    await client.create(ask())
    fake.fail_next(overloaded(), overloaded(), key=key)
    await fail(client)
    await fail(client)
    assert set(client.states().values()) == {"closed"}


async def test_after_the_cooldown_a_probe_closes_the_circuit_or_opens_it_again(fake, key, api, clock):
    client = breaker(api, clock)
    fake.fail_next(*([overloaded()] * 4), key=key)
    for _ in range(3):
        await fail(client)
    clock.advance(10.0)
    assert set(client.states().values()) == {"half_open"}
    await fail(client)  # the probe fails: open again, for another cooldown
    assert set(client.states().values()) == {"open"}
    with pytest.raises(CircuitOpen):
        await client.create(ask())
    clock.advance(10.0)
    response = await client.create(ask("probe"))  # this probe succeeds
    assert response.message.text == "probe"
    assert set(client.states().values()) == {"closed"}
    assert len(fake.requests_for(key)) == 5


async def test_while_a_probe_is_out_other_calls_fail_fast(fake, key, api, clock):
    client = breaker(api, clock)
    fake.fail_next(*([overloaded()] * 3), key=key)
    for _ in range(3):
        await fail(client)
    clock.advance(10.0)
    fake.set_latency(first_token=0.5, key=key)
    probe = asyncio.create_task(client.create(ask("probe")))
    while len(fake.requests_for(key)) < 4:  # until the probe is at the fake, answering slowly
        await asyncio.sleep(0.005)
    with pytest.raises(CircuitOpen, match="probe is under way"):
        await client.create(ask())
    assert (await probe).message.text == "probe"
    await client.create(ask())


async def test_a_failure_rate_over_the_window_opens_the_circuit(fake, key, api, clock):
    client = breaker(api, clock, failure_rate=0.5, window=6)
    script = [True, False, True, False, False, True]  # True: fails; never 3 in a row
    for n, failing in enumerate(script):
        assert set(client.states().values()) <= {"closed"}, n
        if failing:
            fake.fail_next(overloaded(), key=key)
            await fail(client)
        else:
            await client.create(ask())
    assert set(client.states().values()) == {"open"}


async def test_circuits_are_per_model(fake, key, api, clock):
    client = breaker(api, clock)
    fake.fail_next(*([overloaded()] * 3), key=key)
    for _ in range(3):
        await fail(client)
    other = MessagesRequest(model="claude-sonnet-4-6", max_tokens=200, messages=[Message.user("hi")])
    await client.create(other)
    states = client.states()
    assert states[f"{MODEL}@{fake.base_url}"] == "open"
    assert states[f"claude-sonnet-4-6@{fake.base_url}"] == "closed"


async def test_retries_above_the_breaker_stop_when_it_opens(fake, key, api, clock):
    sleeps = []

    async def sleep(seconds):
        sleeps.append(seconds)

    client = RetryingClient(breaker(api, clock), attempts=10, sleep=sleep)
    fake.fail_next(*([overloaded()] * 10), key=key)
    with pytest.raises(CircuitOpen):
        await client.create(ask())
    assert len(fake.requests_for(key)) == 3
    assert len(sleeps) == 3
