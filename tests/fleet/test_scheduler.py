"""The scheduling policy, driven step by step: shares, starvation, priorities, aging, the slot bound."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tether.fleet.scheduler import FairQueue, Scheduler


def drain(fq: FairQueue, n: int | None = None) -> list:
    out = []
    while fq and (n is None or len(out) < n):
        out.append(fq.pop().item)
    return out


def test_weighted_queues_share_dispatches_by_weight():
    fq: FairQueue[str] = FairQueue({"a": 3, "b": 1, "c": 0.5})
    for i in range(1000):
        for q in "abc":
            fq.push(f"{q}{i}", queue=q)
    served = Counter(item[0] for item in drain(fq, 450))
    assert served == {"a": 300, "b": 100, "c": 50}


def test_equal_weights_alternate():
    fq: FairQueue[str] = FairQueue()
    for i in range(3):
        fq.push(f"a{i}", queue="a")
        fq.push(f"b{i}", queue="b")
    assert drain(fq) == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_a_low_weight_queue_makes_progress_under_sustained_load():
    """A heavy queue refilled every step never shuts out a queue with 1/100th of its weight."""
    fq: FairQueue[str] = FairQueue({"heavy": 100, "light": 1})
    for i in range(5):
        fq.push(f"light{i}", queue="light")
    light_at = []
    for step in range(1000):
        fq.push(f"heavy{step}", queue="heavy")
        fq.push(f"heavy{step}b", queue="heavy")  # the heavy queue grows faster than it drains
        if fq.pop().item.startswith("light"):
            light_at.append(step)
    assert len(light_at) == 5, "every light item was served"
    gaps = [b - a for a, b in zip([-1, *light_at], light_at, strict=False)]
    assert max(gaps) <= 102, f"the light queue waited at most ~Σw/w dispatches: {gaps}"


def test_an_idle_queue_saves_no_credit():
    """A queue that was idle while another worked joins at the current virtual time: no burst."""
    fq: FairQueue[str] = FairQueue()
    for i in range(100):
        fq.push(f"a{i}", queue="a")
    drain(fq, 50)
    for i in range(10):
        fq.push(f"b{i}", queue="b")
    assert [item[0] for item in drain(fq, 6)] == ["b", "a", "b", "a", "b", "a"]


def test_cost_counts_against_the_queue():
    fq: FairQueue[str] = FairQueue()
    for i in range(20):
        fq.push(f"big{i}", queue="big", cost=4)
        fq.push(f"small{i}", queue="small", cost=1)
    served = Counter(item.rstrip("0123456789") for item in drain(fq, 20))
    assert served == {"big": 4, "small": 16}


def test_priority_within_a_queue_then_first_come_first_served():
    fq: FairQueue[str] = FairQueue(aging=None)
    fq.push("low1", priority=0)
    fq.push("high1", priority=5)
    fq.push("mid", priority=2)
    fq.push("low2", priority=0)
    fq.push("high2", priority=5)
    assert drain(fq) == ["high1", "high2", "mid", "low1", "low2"]


def test_aging_bounds_how_long_urgent_arrivals_can_pass_an_item():
    """With aging=10, a priority-0 item is passed only by priority-1 items pushed within 10 pushes of it."""
    fq: FairQueue[str] = FairQueue(aging=10)
    fq.push("old", priority=0)
    order = []
    for step in range(30):  # a steady stream of urgent work, one in, one out
        fq.push(f"urgent{step}", priority=1)
        order.append(fq.pop().item)
    assert "old" in order
    assert order.index("old") <= 11


def test_strict_priority_would_starve_without_aging():
    fq: FairQueue[str] = FairQueue(aging=None)
    fq.push("old", priority=0)
    order = []
    for step in range(30):
        fq.push(f"urgent{step}", priority=1)
        order.append(fq.pop().item)
    assert "old" not in order


def test_removed_entries_are_skipped_and_counted_out():
    fq: FairQueue[str] = FairQueue()
    entries = [fq.push(f"x{i}") for i in range(5)]
    assert fq.remove(entries[1]) and fq.remove(entries[3])
    assert not fq.remove(entries[3])
    assert len(fq) == 3 and fq.lengths() == {"default": 3}
    assert drain(fq) == ["x0", "x2", "x4"]
    assert len(fq) == 0 and fq.lengths() == {}
    with pytest.raises(IndexError):
        fq.pop()


def test_bad_weights_and_aging_are_refused():
    with pytest.raises(ValueError):
        FairQueue({"a": 0})
    with pytest.raises(ValueError):
        FairQueue(aging=0)
    with pytest.raises(ValueError):
        Scheduler(0)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_scheduler_bounds_slots_and_grants_in_fair_order():
    scheduler = Scheduler(2, {"a": 2, "b": 1})
    granted: list[str] = []
    holding = 0
    most = 0

    async def worker(name: str, queue: str, release: asyncio.Event) -> None:
        nonlocal holding, most
        async with scheduler.slot(queue):
            granted.append(name)
            holding += 1
            most = max(most, holding)
            await release.wait()
            holding -= 1

    releases = {}
    tasks = []
    for i in range(6):
        for q in "ab":
            name = f"{q}{i}"
            releases[name] = asyncio.Event()
            tasks.append(asyncio.create_task(worker(name, q, releases[name])))
    await settle()
    assert granted == ["a0", "b0"] and scheduler.running == 2 and scheduler.queued == 10
    while len(granted) < 12:  # finish the oldest holder, one step at a time
        releases[next(n for n in granted if not releases[n].is_set())].set()
        await settle()
        assert scheduler.running == min(2, 12 - sum(e.is_set() for e in releases.values()))
    for event in releases.values():
        event.set()
    await asyncio.gather(*tasks)
    assert most == 2
    assert granted[2:8] == ["a1", "a2", "b1", "a3", "a4", "b2"]
    assert scheduler.running == 0 and scheduler.queued == 0


async def test_a_cancelled_waiter_leaves_the_queue_and_holds_nothing():
    scheduler = Scheduler(1)
    await scheduler.acquire()
    waiter = asyncio.create_task(scheduler.acquire())
    other = asyncio.create_task(scheduler.acquire())
    await settle()
    assert scheduler.queued == 2
    waiter.cancel()
    await settle()
    assert scheduler.queued == 1
    scheduler.release()
    await other
    assert scheduler.running == 1 and scheduler.queued == 0


async def test_a_waiter_cancelled_as_its_slot_is_granted_passes_the_slot_on():
    scheduler = Scheduler(1)
    await scheduler.acquire()
    first = asyncio.create_task(scheduler.acquire())
    second = asyncio.create_task(scheduler.acquire())
    await settle()
    scheduler.release()  # grants `first`'s future ...
    first.cancel()  # ... which is cancelled before it runs again
    await settle()
    assert first.cancelled()
    await second
    assert scheduler.running == 1 and scheduler.queued == 0
