"""The local fleet against the fake API on loopback: bounds, fairness, priorities, handles, map,
pipeline, failures and cancellation. Runs are held and counted with a probe around the real client
(a ``ModelClient`` of the test's own), never by timing."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from tether import AnthropicClient
from tether.agent import events as ev
from tether.fleet.local import Fleet, RunHandle
from tether.fleet.spec import RunOutcome, RunSpec
from tether.sessions import Sessions
from tether.store.sql import open_store
from tether.testing import server_error
from tether.testing.gate import Gate


@pytest.fixture
async def client(fake, key) -> AsyncIterator[AnthropicClient]:
    c = AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=0)
    yield c
    await c.aclose()


@pytest.fixture
async def sessions(tmp_path) -> AsyncIterator[Sessions]:
    store = await open_store(str(tmp_path / "sessions.db"))
    yield Sessions(store)
    await store.close()


class Probe:
    """A fleet observer: which runs started, in what order, and the most that were live at once."""

    def __init__(self) -> None:
        self.started: list[RunHandle] = []
        self.live = 0
        self.most = 0

    def __call__(self, handle: RunHandle, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            self.started.append(handle)
            self.live += 1
            self.most = max(self.most, self.live)
        elif isinstance(event, ev.RunEnd):
            self.live -= 1


async def until(predicate, what: str = "the condition") -> None:
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def spec(task: str, **fields) -> RunSpec:
    return RunSpec(task, **fields)


async def test_no_more_runs_than_the_concurrency_at_once(client, sessions):
    gate, probe = Gate(client), Probe()
    async with Fleet(gate, sessions, concurrency=3, observe=probe) as fleet:
        handles = [fleet.submit(spec(f"task {i}")) for i in range(10)]
        await until(lambda: gate.waiting == 3, "three held calls")
        assert (fleet.stats.running, fleet.stats.queued) == (3, 7)
        assert probe.live == 3
        gate.open(100)
        outcomes = [await h for h in handles]
    assert probe.most == 3
    assert [o.outcome for o in outcomes] == ["completed"] * 10
    assert fleet.stats.finished == {"completed": 10} and fleet.stats.running == fleet.stats.queued == 0


async def test_queues_share_the_slots_by_weight(client, sessions):
    probe = Probe()
    async with Fleet(client, sessions, concurrency=1, weights={"a": 3, "b": 1}, observe=probe) as fleet:
        for i in range(8):
            fleet.submit(spec(f"a{i}", queue="a"))
        for i in range(4):
            fleet.submit(spec(f"b{i}", queue="b"))
    order = [h.spec.queue for h in probe.started]
    assert Counter(order[:8]) == {"a": 6, "b": 2}
    assert Counter(order) == {"a": 8, "b": 4}


async def test_higher_priority_runs_first_within_a_queue(client, sessions):
    gate, probe = Gate(client), Probe()
    async with Fleet(gate, sessions, concurrency=1, observe=probe) as fleet:
        fleet.submit(spec("blocker"))
        await until(lambda: gate.waiting == 1, "the blocker's call")
        for name, priority in [("low", 0), ("high", 9), ("mid", 5), ("low2", 0)]:
            fleet.submit(spec(name, priority=priority))
        gate.open(100)
    assert [h.spec.task for h in probe.started] == ["blocker", "high", "mid", "low", "low2"]


async def test_submit_await_and_watch_a_run(client, sessions):
    async with Fleet(client, sessions) as fleet:
        handle = fleet.submit(spec("hello fleet", id="greeting"))
        events = [event async for event in handle.events()]
        outcome = await handle
    assert isinstance(events[0], ev.RunStarted) and isinstance(events[-1], ev.RunEnd)
    assert "".join(e.text for e in events if isinstance(e, ev.TextDelta)) == "hello fleet"
    assert outcome == handle.result()
    assert (outcome.spec_id, outcome.outcome, outcome.text, outcome.turns) == ("greeting", "completed",
                                                                               "hello fleet", 1)
    info = await sessions.get(outcome.session_id)
    assert info.status == "completed" and info.turns == 1
    assert [m.role for m in await sessions.store.messages(outcome.session_id)] == ["user", "assistant"]
    assert [e async for e in handle.events()] == [], "a finished run has nothing more to say"


async def test_cancel_a_running_run(client, sessions):
    gate = Gate(client)
    async with Fleet(gate, sessions) as fleet:
        handle = fleet.submit(spec("never answered"))
        watch = handle.events()
        await until(lambda: gate.waiting == 1, "the held call")
        assert handle.state == "running"
        assert handle.cancel()
        outcome = await handle
        seen = [e async for e in watch]
        gate.open(10)
        after = await fleet.submit(spec("still working"))
    assert outcome.outcome == "cancelled" and not outcome.ok
    assert isinstance(seen[0], ev.RunStarted) and not any(isinstance(e, ev.RunEnd) for e in seen)
    assert (await sessions.get(handle.session_id)).status == "interrupted"
    assert after.outcome == "completed", "the fleet goes on after a cancel"
    assert not handle.cancel(), "a finished run cannot be cancelled"
    assert fleet.stats.finished == {"cancelled": 1, "completed": 1}


async def test_cancel_a_queued_run(client, sessions):
    gate = Gate(client)
    async with Fleet(gate, sessions, concurrency=1) as fleet:
        fleet.submit(spec("blocker"))
        queued = fleet.submit(spec("waiting"))
        await until(lambda: gate.waiting == 1, "the blocker's call")
        assert queued.state == "queued" and fleet.stats.queued == 1
        queued.cancel()
        outcome = await queued
        gate.open(10)
    assert outcome.outcome == "cancelled" and outcome.error == "cancelled while queued"
    assert await sessions.store.get(queued.session_id) is None, "a run cancelled in the queue never started"


async def test_map_keeps_the_order_of_the_specs(fake, client, sessions):
    slow_key = f"slow-{uuid.uuid4().hex[:8]}"
    fake.set_latency(0.2, key=slow_key)
    slow = AnthropicClient(api_key=slow_key, base_url=fake.base_url, max_retries=0)

    def choose(s: RunSpec):  # a client factory: the first spec talks to a slow key
        return slow if s.id == "0" else client

    probe = Probe()
    async with Fleet(choose, sessions, concurrency=4, observe=probe) as fleet:
        outcomes = await fleet.map(spec(f"task {i}", id=str(i)) for i in range(8))
    await slow.aclose()
    assert [o.spec_id for o in outcomes] == [str(i) for i in range(8)]
    assert [o.text for o in outcomes] == [f"task {i}" for i in range(8)]


async def test_pipeline_feeds_each_outcome_into_the_next_run(client, sessions):
    def then(outcome: RunOutcome) -> RunSpec | None:
        if outcome.text.count("!") >= 3:
            return None
        return RunSpec(outcome.text + "!", session_id=outcome.session_id)

    async def then_async(outcome: RunOutcome) -> RunSpec | None:
        return None if outcome.text.endswith("?") else RunSpec(outcome.text + "?")

    async with Fleet(client, sessions) as fleet:
        chain = await fleet.pipeline(spec("go"), then)
        other = await fleet.pipeline(spec("why"), then_async)
    assert [o.text for o in chain] == ["go", "go!", "go!!", "go!!!"]
    assert len({o.session_id for o in chain}) == 1, "each step continued the same session"
    assert len(await sessions.store.messages(chain[0].session_id)) == 8
    assert [o.text for o in other] == ["why", "why?"] and other[0].session_id != other[1].session_id


async def test_failing_runs_end_in_categorized_outcomes_and_the_fleet_goes_on(fake, key, client, sessions):
    def factory(s: RunSpec):
        if s.id == "no-client":
            raise RuntimeError("no client for you")
        return client

    async with Fleet(factory, sessions, concurrency=4) as fleet:
        fake.fail_next(server_error(), key=key)
        api = await fleet.submit(spec("meets a 500", id="api"))
        rest = await fleet.map([spec("bad tools", id="tools", tools=["nosuch"]),
                                spec("no client", id="no-client"),
                                spec("fine", id="fine")])
    assert (api.outcome, api.ok) == ("api_error", False) and "500" in api.error
    by_id = {o.spec_id: o for o in rest}
    assert by_id["tools"].outcome == "validation_error" and "nosuch" in by_id["tools"].error
    assert by_id["no-client"].outcome == "system_error" and "no client for you" in by_id["no-client"].error
    assert by_id["fine"].outcome == "completed"
    assert fleet.stats.finished == {"api_error": 1, "validation_error": 1, "system_error": 1, "completed": 1}
    assert (await sessions.get(api.session_id)).status == "failed"


async def test_leaving_the_fleet_with_an_error_cancels_its_runs(client, sessions):
    gate = Gate(client)
    fleet = Fleet(gate, sessions, concurrency=1)
    with pytest.raises(ValueError, match="boom"):
        async with fleet:
            running = fleet.submit(spec("held"))
            queued = fleet.submit(spec("queued"))
            await until(lambda: gate.waiting == 1, "the held call")
            raise ValueError("boom")
    assert running.result().outcome == queued.result().outcome == "cancelled"
    assert (await sessions.get(running.session_id)).status == "interrupted"
    with pytest.raises(RuntimeError):
        fleet.submit(spec("too late"))


async def test_cancelling_a_map_caller_cancels_its_runs(client, sessions):
    gate = Gate(client)
    async with Fleet(gate, sessions, concurrency=2) as fleet:
        mapping = asyncio.create_task(fleet.map([spec(f"t{i}") for i in range(4)]))
        await until(lambda: gate.waiting == 2, "two held calls")
        mapping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await mapping
    assert fleet.stats.finished == {"cancelled": 4}


async def test_a_cancelled_awaiter_does_not_cancel_the_run(client, sessions):
    gate = Gate(client)
    async with Fleet(gate, sessions) as fleet:
        handle = fleet.submit(spec("patience"))
        waiter = asyncio.create_task(_wait(handle))
        await until(lambda: gate.waiting == 1, "the held call")
        waiter.cancel()
        gate.open()
        assert (await handle).outcome == "completed"


async def _wait(handle: RunHandle) -> RunOutcome:
    return await handle


async def test_a_run_ending_in_a_transient_error_is_resumed_from_the_store(fake, key, client, sessions):
    async with Fleet(client, sessions, resume_attempts=2) as fleet:
        fake.fail_next(server_error(), server_error(), key=key)
        handle = fleet.submit(spec("third time lucky"))
        events = [e async for e in handle.events()]
        outcome = await handle
        fake.fail_next(*[server_error()] * 3, key=key)
        given_up = await fleet.submit(spec("unlucky"))
    assert (outcome.outcome, outcome.text, outcome.turns) == ("completed", "third time lucky", 1)
    assert [type(e).__name__ for e in events].count("RunStarted") == 3
    assert [m.role for m in await sessions.store.messages(outcome.session_id)] == ["user", "assistant"]
    assert given_up.outcome == "api_error"
    assert fleet.stats.resumed == 4


def hold_setups(sessions: Sessions) -> tuple[list[str], asyncio.Event]:
    """Make every run's setup wait, in the store's ``create``, until the event is set; the list
    is the sessions that reached it."""
    reached, opened, create = [], asyncio.Event(), sessions.store.create

    async def held(info):
        reached.append(info.id)
        await opened.wait()
        return await create(info)

    sessions.store.create = held
    return reached, opened


async def test_runs_are_set_up_a_few_at_a_time_and_their_first_call_frees_the_slot(client, sessions, monkeypatch):
    monkeypatch.setattr("tether.fleet.local.START_HOLD", 600)  # only the first calls free the slots
    gate = Gate(client)
    reached, opened = hold_setups(sessions)
    async with Fleet(gate, sessions, concurrency=6, starting=2) as fleet:
        for i in range(6):
            fleet.submit(spec(f"task {i}"))
        await until(lambda: len(reached) == 2, "two runs setting up")
        await asyncio.sleep(0.2)  # ample time for the others to reach their setup, were they let in
        assert (len(reached), fleet.stats.running) == (2, 6)
        opened.set()
        # The slots are freed by the first call, not by its answer: all six wait in a call at once.
        await until(lambda: gate.waiting == 6, "every run in its first model call")
        gate.open(100)
    assert fleet.stats.finished == {"completed": 6}


async def test_a_run_that_makes_no_model_call_frees_its_start_slot_after_a_while(client, sessions, monkeypatch):
    monkeypatch.setattr("tether.fleet.local.START_HOLD", 0.05)
    reached, opened = hold_setups(sessions)
    async with Fleet(client, sessions, concurrency=2, starting=1) as fleet:
        fleet.submit(spec("stuck in setup"))
        fleet.submit(spec("next"))
        await until(lambda: len(reached) == 2, "the second run setting up while the first still is")
        opened.set()
    assert fleet.stats.finished == {"completed": 2}


async def test_starting_must_be_positive(client, sessions):
    with pytest.raises(ValueError, match="starting must be at least 1"):
        Fleet(client, sessions, starting=0)
