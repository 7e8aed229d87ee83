"""Model fallback against the fake Messages API: when it moves on, and what the fallback receives."""

from __future__ import annotations

import pytest

from tether import AnthropicClient, Message, MessagesRequest, TextBlock
from tether.api.caching import CachePlan
from tether.api.catalog import default_catalog
from tether.api.stream import MessageComplete
from tether.errors import APIConnectionError, APIStatusError
from tether.fleet.breaker import Breakers, CircuitBreakerClient
from tether.fleet.fallback import FallbackClient, adapt, adapt_thinking
from tether.fleet.retry import RetryingClient
from tether.testing import (
    ErrorResponse,
    ManualClock,
    ResetMidStream,
    overloaded,
    rate_limited,
    server_error,
)

PRIMARY = "claude-opus-4-8"  # adaptive thinking only, 128k output
MANUAL = "claude-haiku-4-5-20251001"  # manual thinking budget, 64k output
BUDGETED = "claude-opus-4-6"  # adaptive, budget still allowed
CATALOG = default_catalog()


def ask(text: str = "hi", *, model: str = PRIMARY, max_tokens: int = 400, **fields) -> MessagesRequest:
    return MessagesRequest(model=model, max_tokens=max_tokens, messages=[Message.user(text)], **fields)


# --- adapting the request ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "thinking,model,max_tokens,expected",
    [
        ({"type": "adaptive"}, MANUAL, 8_000, {"type": "enabled", "budget_tokens": 4_000}),
        ({"type": "adaptive"}, MANUAL, 1_500, None),  # no room for the minimum budget
        ({"type": "enabled", "budget_tokens": 10_000}, MANUAL, 8_000, {"type": "enabled", "budget_tokens": 7_999}),
        ({"type": "enabled", "budget_tokens": 2_000}, PRIMARY, 8_000, {"type": "adaptive"}),
        ({"type": "enabled", "budget_tokens": 2_000}, BUDGETED, 8_000, {"type": "enabled", "budget_tokens": 2_000}),
        ({"type": "adaptive"}, BUDGETED, 8_000, {"type": "adaptive"}),
        (None, MANUAL, 8_000, None),
        (None, "claude-fable-5-1", 8_000, {"type": "adaptive"}),  # cannot turn thinking off
        ({"type": "disabled"}, "claude-fable-5-1", 8_000, {"type": "adaptive"}),
        ({"type": "disabled"}, MANUAL, 8_000, {"type": "disabled"}),
    ],
)
def test_thinking_is_fitted_to_the_fallback_model(thinking, model, max_tokens, expected):
    assert adapt_thinking(thinking, CATALOG.get(model), max_tokens) == expected


def test_adapt_caps_max_tokens_drops_betas_and_lowers_a_1h_ttl():
    plan = CachePlan((0,), {"type": "ephemeral", "ttl": "1h"}, 0, "t", "s")
    request = ask(max_tokens=100_000, thinking={"type": "adaptive"}, betas=["context-1m-2025-08-07"],
                  cache_control={"type": "ephemeral", "ttl": "1h"})
    request.cache = plan
    adapted = adapt(request, CATALOG.get(MANUAL))
    assert adapted.model == MANUAL and adapted.max_tokens == 64_000
    assert adapted.thinking == {"type": "enabled", "budget_tokens": 32_000}
    assert adapted.betas == []
    assert adapted.cache.control == {"type": "ephemeral"} and adapted.cache_control == {"type": "ephemeral"}
    assert request.model == PRIMARY and request.cache.control["ttl"] == "1h"  # the original is untouched
    assert adapt(request, CATALOG.get(MANUAL), keep_1h_ttl=True).cache.control["ttl"] == "1h"


# --- against the fake ----------------------------------------------------------------------------

async def test_an_overloaded_primary_falls_back_with_the_request_adapted(fake, key, api):
    client = FallbackClient.over(api, [PRIMARY, MANUAL])
    request = ask("fall back", max_tokens=100_000, thinking={"type": "adaptive"},
                  betas=["context-1m-2025-08-07"], system=[TextBlock("Be brief. " * 600)])
    request.cache = CachePlan((0,), {"type": "ephemeral", "ttl": "1h"}, 0, "t", "s")
    fake.fail_next(overloaded(), key=key)
    events = [event async for event in client.stream(request)]
    response = events[-1].response
    assert response.model == MANUAL
    assert response.message.text == "fall back"
    first, second = fake.requests_for(key)
    assert first.status == 529 and first.header("anthropic-beta") == "context-1m-2025-08-07"
    body = second.json()
    assert second.status == 200 and second.header("anthropic-beta") is None
    assert body["model"] == MANUAL and body["max_tokens"] == 64_000
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 32_000}
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}


async def test_fallback_comes_after_the_primary_retries(fake, key, api):
    async def no_wait(seconds):
        pass

    retrying = RetryingClient(api, attempts=3, sleep=no_wait)
    moves = []
    client = FallbackClient.over(retrying, [PRIMARY, MANUAL],
                                 on_fallback=lambda a, b, error: moves.append((a, b, error.status_code)))
    fake.fail_next(server_error(), server_error(), server_error(), key=key)
    response = await client.create(ask())
    assert response.model == MANUAL
    assert [(r.json()["model"], r.status) for r in fake.requests_for(key)] == [
        (PRIMARY, 500), (PRIMARY, 500), (PRIMARY, 500), (MANUAL, 200)]
    assert moves == [(PRIMARY, MANUAL, 500)]


async def test_an_open_circuit_sends_the_call_straight_to_the_fallback(fake, key, api):
    clock = ManualClock()
    breakers = Breakers(threshold=1, cooldown=60, clock=clock.now)
    client = FallbackClient.over(CircuitBreakerClient(api, breakers), [PRIMARY, MANUAL])
    fake.fail_next(overloaded(), key=key)
    assert (await client.create(ask())).model == MANUAL  # opened the primary's circuit
    assert breakers.states()[f"{PRIMARY}@{fake.base_url}"] == "open"
    assert (await client.create(ask())).model == MANUAL
    models = [r.json()["model"] for r in fake.requests_for(key)]
    assert models == [PRIMARY, MANUAL, MANUAL]  # the primary was not called again


async def test_each_model_of_a_chain_can_have_its_own_client(fake, key, api):
    other_key = f"{key}-other"
    other = AnthropicClient(api_key=other_key, base_url=fake.base_url, max_retries=0)
    try:
        client = FallbackClient([(PRIMARY, api), (MANUAL, other)])
        fake.fail_next(overloaded(), key=key)
        assert (await client.create(ask())).model == MANUAL
        assert len(fake.requests_for(other_key)) == 1
    finally:
        await other.aclose()


async def test_a_request_for_a_later_model_of_the_chain_starts_there(fake, key, api):
    client = FallbackClient.over(api, [PRIMARY, BUDGETED, MANUAL])
    fake.fail_next(overloaded(), key=key)
    assert (await client.create(ask(model=BUDGETED))).model == MANUAL
    assert [r.json()["model"] for r in fake.requests_for(key)] == [BUDGETED, MANUAL]


@pytest.mark.parametrize(
    "fault", [ErrorResponse(400, "invalid_request_error", "bad"), rate_limited(retry_after=None)], ids=["400", "429"]
)
async def test_errors_another_model_would_not_fix_are_raised(fake, key, api, fault):
    client = FallbackClient.over(api, [PRIMARY, MANUAL])
    fake.fail_next(fault, key=key)
    with pytest.raises(APIStatusError):
        await client.create(ask())
    assert len(fake.requests_for(key)) == 1


async def test_a_stream_cut_after_its_first_events_does_not_fall_back(fake, key, api):
    client = FallbackClient.over(api, [PRIMARY, MANUAL])
    fake.fail_next(ResetMidStream(after_events=4), key=key)
    seen = []
    with pytest.raises(APIConnectionError):
        async for event in client.stream(ask("All work and no play. " * 10)):
            seen.append(event)
    assert seen and not any(isinstance(e, MessageComplete) for e in seen)
    assert len(fake.requests_for(key)) == 1


async def test_the_last_model_failing_raises_its_error(fake, key, api):
    client = FallbackClient.over(api, [PRIMARY, MANUAL])
    fake.fail_next(overloaded(), server_error(), key=key)
    with pytest.raises(APIStatusError) as caught:
        await client.create(ask())
    assert caught.value.status_code == 500
