"""Fleet state shared through Redis: ``RedisBuckets`` (a ``BucketStore``) and ``RedisBudgets`` (a
``BudgetLedger``) behave as the in-process ones do, and two processes share one bucket and one
budget without either overspending. Skipped, saying so, when Redis is not reachable."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from tether.fleet.buckets import Observed
from tether.fleet.budget import Budgets

redis_asyncio = pytest.importorskip("redis.asyncio", reason="the shared-state tests need redis (the distributed extra)")

from tether.fleet.shared_state import RedisBuckets, RedisBudgets, open_redis  # noqa: E402

REDIS_URL = os.environ.get("TETHER_TEST_REDIS", "redis://127.0.0.1:6379/0")
TAKER = str(Path(__file__).parent / "workers" / "shared_taker.py")


@pytest.fixture
async def redis():
    client = open_redis(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set TETHER_TEST_REDIS): {exc}")
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis):
    name = f"tether-test-{uuid.uuid4().hex[:8]}:"
    yield name
    keys = [key async for key in redis.scan_iter(f"{name}*")]
    if keys:
        await redis.delete(*keys)


# Redis refills on its own clock, so levels move by capacity/60 per second of test time: a capacity
# of 60 moves by 1 a second, which ``approx(abs=0.5)`` tolerates for the few ms a step takes.
near = lambda value: pytest.approx(value, abs=0.5)  # noqa: E731


async def test_a_bucket_takes_all_or_nothing_and_says_how_long_to_wait(redis, prefix):
    store = RedisBuckets(redis, prefix=prefix)
    capacities = await store.correct("k", {"requests": Observed(limit=60), "input_tokens": Observed(limit=600)}, 0)
    assert capacities == {"requests": 60.0, "input_tokens": 600.0}
    assert await store.take("k", {"requests": 1, "input_tokens": 500}, 0) == 0.0
    assert await store.take("k", {"requests": 1, "input_tokens": 400}, 0) == pytest.approx(30.0, abs=0.2)
    levels = await store.levels("k")
    assert levels["requests"] == (near(59.0), 60.0) and levels["input_tokens"] == (near(100.0), 600.0)


async def test_over_capacity_never_passes_and_unknown_buckets_do_not_constrain(redis, prefix):
    store = RedisBuckets(redis, prefix=prefix)
    assert await store.take("k", {"requests": 1, "input_tokens": 10**9}, 0) == 0.0
    await store.correct("k", {"input_tokens": Observed(limit=1000)}, 0)
    assert math.isinf(await store.take("k", {"input_tokens": 1001}, 0))


async def test_give_refunds_up_to_capacity_or_charges_into_debt(redis, prefix):
    store = RedisBuckets(redis, prefix=prefix)
    await store.correct("k", {"output_tokens": Observed(limit=600)}, 0)
    await store.take("k", {"output_tokens": 500}, 0)
    await store.give("k", {"output_tokens": 1_000}, 0)
    assert (await store.levels("k"))["output_tokens"] == (600.0, 600.0)
    await store.give("k", {"output_tokens": -700}, 0)
    assert (await store.levels("k"))["output_tokens"][0] == pytest.approx(-100.0, abs=0.5)
    assert await store.take("k", {"output_tokens": 100}, 0) == pytest.approx(20.0, abs=0.2)


async def test_corrections_set_the_capacity_and_only_lower_the_level(redis, prefix):
    store = RedisBuckets(redis, prefix=prefix)
    assert await store.correct("k", {"requests": Observed(limit=100, ceiling=40)}, 0) == {"requests": 100.0}
    assert (await store.levels("k"))["requests"] == (near(40.0), 100.0)
    await store.correct("k", {"requests": Observed(limit=100, ceiling=90)}, 0)
    assert (await store.levels("k"))["requests"][0] == near(40.0)
    await store.correct("k", {"requests": Observed(limit=30, ceiling=None)}, 0)
    assert (await store.levels("k"))["requests"] == (30.0, 30.0)
    assert await store.correct("k", {}, 0) == {"requests": 30.0}, "a worker reads what the others learned"


async def test_a_pause_holds_every_take_and_only_extends(redis, prefix):
    store = RedisBuckets(redis, prefix=prefix)
    await store.pause("k", 5.0, 0)
    await store.pause("k", 1.0, 0)
    assert await store.take("k", {"requests": 1}, 0) == pytest.approx(5.0, abs=0.2)
    await store.pause("other", 0.2, 0)
    await asyncio.sleep(0.25)
    assert await store.take("other", {"requests": 1}, 0) == 0.0


async def test_the_redis_ledger_answers_as_the_in_process_one(redis, prefix):
    shared, local = RedisBudgets(redis, prefix=prefix), Budgets()
    for ledger in (shared, local):
        await ledger.set_limit("fleet", Decimal("1.00"))
        await ledger.set_limit("run:*", Decimal("0.30"))
        await ledger.set_limit("run:vip", None)
    steps = [("a", ["run:1", "fleet"], "0.25"), ("b", ["run:1", "fleet"], "0.25"), ("c", ["run:vip", "fleet"], "0.70"),
             ("d", ["run:vip", "fleet"], "0.10")]
    for ledger in (shared, local):
        answers = [await ledger.reserve(hold, scopes, Decimal(amount)) for hold, scopes, amount in steps]
        assert answers == [None, "run:1", None, "fleet"]
        await ledger.settle("a", Decimal("0.125"))
        await ledger.settle("a", Decimal("9"))  # settled already: ignored
        await ledger.settle("nope", Decimal("9"))
    for scope in ("fleet", "run:1", "run:vip", "run:2"):
        assert await shared.status(scope) == await local.status(scope)
    assert await shared.reserve("e", ["run:2", "fleet"], Decimal("0.0000000004")) is None
    assert (await shared.status("run:2")).held == Decimal("0.000000001"), "rounded up to the next nano-dollar"
    assert (await shared.status("fleet")).remaining == Decimal("1.00") - Decimal("0.125") - Decimal("0.700000001")


async def test_a_hold_whose_worker_died_lapses_as_spent(redis, prefix):
    ledger = RedisBudgets(redis, prefix=prefix, hold_ttl=0.2)
    await ledger.set_limit("fleet", Decimal("1"))
    assert await ledger.reserve("dead", ["fleet"], Decimal("0.4")) is None
    await asyncio.sleep(0.3)
    status = await ledger.status("fleet")
    assert (status.spent, status.held) == (Decimal("0.4"), Decimal("0"))


def _compete(prefix: str, seconds: float, processes: int = 2) -> list[tuple[int, int]]:
    children = [subprocess.Popen([sys.executable, TAKER, REDIS_URL, prefix, str(seconds)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    for child in children:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
    for child in children:  # both go at once
        child.stdin.write("go\n")
        child.stdin.flush()
    counts = []
    for child in children:
        out, err = child.communicate(timeout=30)
        assert child.returncode == 0, err
        requests, reservations = out.split()
        counts.append((int(requests), int(reservations)))
    return counts


async def test_two_processes_share_one_bucket_and_one_budget(redis, prefix):
    await RedisBuckets(redis, prefix=prefix).correct("shared", {"requests": Observed(limit=60)}, 0)
    await RedisBudgets(redis, prefix=prefix).set_limit("fleet", Decimal("1.00"))
    seconds = 1.0
    started = time.monotonic()
    counts = await asyncio.to_thread(_compete, prefix, seconds)
    refilled = 60 / 60 * (time.monotonic() - started)  # one request a second, from the correction on
    requests, reservations = [c[0] for c in counts], [c[1] for c in counts]
    assert all(requests), f"both processes took requests: {requests}"
    assert 60 <= sum(requests) <= 60 + refilled + 1, requests
    assert sum(reservations) == 10, f"exactly $1.00 in $0.10 calls, between them: {reservations}"
    status = await RedisBudgets(redis, prefix=prefix).status("fleet")
    assert (status.spent, status.held, status.remaining) == (Decimal("1"), Decimal("0"), Decimal("0"))
