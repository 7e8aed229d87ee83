"""``build_client``: the stack's order, the SDK without retries, and a run through the whole stack."""

from __future__ import annotations

import pytest

from tether import Agent, AnthropicClient, Settings, tool
from tether.config import ApiSettings, OutputSettings
from tether.fleet.breaker import Breakers
from tether.fleet.budget import Budgets
from tether.fleet.compose import FleetOptions, build_client, layers, scopes_for
from tether.fleet.ratelimit import RateLimiter
from tether.testing import Limits, overloaded, server_error, tool_use

MODEL = "claude-opus-4-8"
FALLBACK = "claude-haiku-4-5-20251001"


@pytest.fixture
def settings(fake, key) -> Settings:
    return Settings(model=MODEL, api=ApiSettings(api_key=key, base_url=fake.base_url, max_retries=2),
                    output=OutputSettings(max_tokens=1_000))


def bottom(client):
    while hasattr(client, "inner") or hasattr(client, "chain"):
        client = client.chain[0][1] if hasattr(client, "chain") else client.inner
    return client


async def test_the_wrappers_stack_in_their_order_over_an_sdk_that_does_not_retry(settings):
    client = build_client(settings, FleetOptions(fallback=(FALLBACK,)), limiter=RateLimiter(),
                          breakers=Breakers(), budgets=Budgets(), scopes=scopes_for(run="r", queue="q"))
    try:
        assert layers(client) == ["BudgetClient", "FallbackClient", "RetryingClient", "CircuitBreakerClient",
                                  "RateLimitedClient", "AnthropicClient"]
        assert bottom(client)._sdk.max_retries == 0
        assert client.scopes == ["run:r", "queue:q", "fleet"]
        assert [model for model, _ in client.inner.chain] == [MODEL, FALLBACK]
    finally:
        await client.aclose()


async def test_without_fleet_layers_it_is_the_sdk_client_with_its_own_retries(settings):
    client = build_client(settings, FleetOptions(retry_attempts=1))
    assert isinstance(client, AnthropicClient) and client._sdk.max_retries == 2
    await client.aclose()


async def test_a_shared_base_is_used_and_not_rebuilt(settings):
    base = AnthropicClient(api_key="k", base_url=settings.api.base_url, max_retries=0)
    breakers = Breakers()
    client = build_client(settings, base=base, breakers=breakers)
    assert bottom(client) is base
    assert client.inner.endpoint == base.base_url
    await base.aclose()


async def test_a_run_through_the_whole_stack(fake, key, settings):
    @tool
    def add(a: int, b: int) -> str:
        """Add two numbers.

        Args:
            a: the first
            b: the second
        """
        return str(a + b)

    fake.set_limits(Limits(1_000, 200_000, 100_000), key=key)
    fake.fail_next(overloaded(), key=key)
    fake.script([[tool_use("add", {"a": 2, "b": 3})], "5"], key=key)
    limiter, breakers, budgets = RateLimiter(key=key), Breakers(), Budgets({"fleet": 1})
    options = FleetOptions(fallback=(FALLBACK,), retry_base=0.0)  # backoff of 0 s: no waiting in a test
    client = build_client(settings, options, limiter=limiter, breakers=breakers, budgets=budgets)
    try:
        result = await Agent(client, tools=[add], settings=settings, clock=fake.clock.now).run("add 2 and 3")
    finally:
        await client.aclose()
    assert result.outcome == "completed" and result.text == "5"
    assert [r.status for r in fake.requests_for(key)] == [529, 200, 200]  # the 529 was retried, same model
    status = await budgets.status("fleet")
    assert status.held == 0 and status.spent > 0
    assert limiter.levels(MODEL)["requests"][1] == 1_000  # learned from the headers
    assert set(breakers.states().values()) == {"closed"}


async def test_a_model_that_keeps_failing_is_served_by_the_fallback(fake, key, settings):
    fake.fail_next(*([server_error()] * 4), key=key)
    options = FleetOptions(retry_attempts=4, retry_base=0.0, fallback=(FALLBACK,))
    client = build_client(settings, options, breakers=Breakers())
    try:
        result = await Agent(client, settings=settings, clock=fake.clock.now).run("hello")
    finally:
        await client.aclose()
    assert result.outcome == "completed"
    assert [r.json()["model"] for r in fake.requests_for(key)] == [MODEL] * 4 + [FALLBACK]
