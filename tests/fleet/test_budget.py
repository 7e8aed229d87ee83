"""Budgets against the fake Messages API: reservations refuse, calls settle, runs stop."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tether import Agent, LimitExceeded, Message, MessagesRequest, Settings, tool
from tether.agent import events as ev
from tether.api.catalog import default_catalog
from tether.api.cost import cost_of
from tether.api.tokens import count_request
from tether.config import OutputSettings
from tether.fleet.budget import BudgetClient, BudgetExhausted, Budgets, estimate_cost, exhausted
from tether.testing import ResetMidStream, overloaded, tool_use

MODEL = "claude-opus-4-8"  # $5 / $25 per million input / output tokens
INFO = default_catalog().get(MODEL)


def ask(text: str = "hi", max_tokens: int = 1_000) -> MessagesRequest:
    return MessagesRequest(model=MODEL, max_tokens=max_tokens, messages=[Message.user(text)])


def test_the_estimate_is_the_prompt_at_the_input_price_and_max_tokens_at_the_output_price():
    request = ask("x" * 400)
    prompt = count_request(request.body())
    assert estimate_cost(request) == (Decimal(prompt) * 5 + Decimal(1_000) * 25) / 1_000_000
    assert estimate_cost(request, output_reserve=100) == (Decimal(prompt) * 5 + Decimal(100) * 25) / 1_000_000


async def test_a_call_that_does_not_fit_is_refused_before_it_is_sent(fake, key, api):
    budgets = Budgets({"queue:small": "0.01"})
    client = BudgetClient(api, budgets, ["run:r1", "queue:small", "fleet"])
    with pytest.raises(BudgetExhausted) as caught:
        await client.create(ask())  # may cost $0.025
    error = caught.value
    assert isinstance(error, LimitExceeded) and error.category == "budget_exhausted"
    assert error.scope == "queue:small" and error.budget == Decimal("0.01")
    assert "queue:small" in str(error) and "$0.0100" in str(error)
    assert fake.requests_for(key) == []
    assert (await budgets.status("fleet")).held == 0


async def test_a_call_settles_at_its_real_cost_in_every_scope(fake, key, api):
    budgets = Budgets({"run:*": 1, "fleet": 10})
    client = BudgetClient(api, budgets, ["run:r1", "queue:q", "fleet"])
    response = await client.create(ask("settle me"))
    real = cost_of(response.usage, INFO).total
    for scope in ("run:r1", "queue:q", "fleet"):
        status = await budgets.status(scope)
        assert status.spent == real and status.held == 0
    assert (await budgets.status("run:r1")).limit == 1 and (await budgets.status("queue:q")).limit is None
    async for _ in client.stream(ask("and a stream")):
        pass
    assert (await budgets.status("fleet")).spent > real


async def test_a_failed_call_settles_at_what_it_reported(fake, key, api):
    budgets = Budgets({"fleet": 10})
    client = BudgetClient(api, budgets, ["fleet"])
    fake.fail_next(overloaded(), key=key)
    with pytest.raises(Exception):  # noqa: B017
        await client.create(ask())
    assert await budgets.status("fleet") == await Budgets({"fleet": 10}).status("fleet")  # nothing spent or held
    fake.fail_next(ResetMidStream(after_events=3), key=key)
    with pytest.raises(Exception):  # noqa: B017
        async for _ in client.stream(ask("All work and no play. " * 10)):
            pass
    status = await budgets.status("fleet")
    assert status.held == 0 and status.spent > 0  # the input message_start reported


async def test_concurrent_calls_never_reserve_past_the_budget(fake, key, api):
    one = estimate_cost(ask("same"))
    budgets = Budgets({"fleet": one * 3})
    client = BudgetClient(api, budgets, ["fleet"])
    results = await asyncio.gather(*(client.create(ask("same")) for _ in range(10)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 3
    assert all(isinstance(r, BudgetExhausted) for r in results if isinstance(r, BaseException))
    status = await budgets.status("fleet")
    assert status.held == 0 and 0 < status.spent < one * 3
    assert len(fake.requests_for(key)) == 3


async def test_a_spent_budget_refuses_new_work_and_others_scopes_go_on(fake, key, api):
    budgets = Budgets({"queue:a": estimate_cost(ask()) + Decimal("0.00001"), "queue:b": "1"})
    a = BudgetClient(api, budgets, ["queue:a", "fleet"])
    b = BudgetClient(api, budgets, ["queue:b", "fleet"])
    await a.create(ask())
    with pytest.raises(BudgetExhausted):
        await a.create(ask())
    await b.create(ask())
    assert await exhausted(budgets, ["queue:b", "fleet"]) is None
    await budgets.set_limit("queue:a", "0")
    assert await exhausted(budgets, ["queue:a", "fleet"]) == "queue:a"


async def test_a_run_stops_at_its_next_model_call_with_its_partial_result(fake, key, api):
    @tool
    def add(a: int, b: int) -> str:
        """Add two numbers.

        Args:
            a: the first
            b: the second
        """
        return str(a + b)

    fake.script([[tool_use("add", {"a": 1, "b": 2})], "3"], key=key)
    settings = Settings(model=MODEL, output=OutputSettings(max_tokens=1_000))
    budgets = Budgets()
    client = BudgetClient(api, budgets, ["run:r1", "fleet"])
    agent = Agent(client, tools=[add], settings=settings, clock=fake.clock.now)
    first = agent.builder().build([Message.user("add 1 and 2")])
    await budgets.set_limit("run:r1", estimate_cost(first) * Decimal("1.01"))
    events = [event async for event in agent.stream("add 1 and 2")]
    end = events[-1]
    assert isinstance(end, ev.RunEnd) and end.outcome == "budget_exhausted"
    assert end.turns == 1 and "run:r1" in (end.error or "")
    assert any(isinstance(e, ev.ToolResult) and e.content == "3" for e in events)  # the partial work
    assert len(fake.requests_for(key)) == 1
