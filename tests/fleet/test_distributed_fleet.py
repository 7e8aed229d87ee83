"""The local fleet's behaviours, on the distributed backend: two ``tether worker`` processes on one
PostgreSQL queue, the fake API (echo) on loopback, and the client in the test process.

Submit → result, outcomes in order, follow-ups continuing a session, failures as categorized
outcomes, priorities, cancellation (queued and running), the per-worker bound; then what only the
distributed backend has: ``tether enqueue``, a clean stop on SIGTERM, and a fenced zombie."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from workers.harness import Workers, fresh_database, query

from tether.config import Settings
from tether.fleet.spec import RunSpec
from tether.store.sql import open_store
from tether.testing import server_error
from tether.testing.fake.ratelimit import Limits

pytest.importorskip("dbos")

from tether.fleet.distributed import DistributedFleet, prepare_database
from tether.fleet.distributed_worker import WorkerOptions

CONCURRENCY = 2
WORKERS = ("w1", "w2")
KEY = f"dist-{uuid.uuid4().hex[:12]}"
REDIS_URL = os.environ.get("TETHER_TEST_REDIS", "redis://127.0.0.1:6379/0")
PREFIX = f"tether-test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture(scope="module")
def url():
    with fresh_database() as url:
        asyncio.run(prepare_database(url))
        yield url


@pytest.fixture(scope="module")
def redis_url():
    """Redis for the shared buckets and budgets, or None (the tests that need it skip)."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError:
        yield None
        return
    yield REDIS_URL
    client = redis.Redis.from_url(REDIS_URL)
    if keys := list(client.scan_iter(f"{PREFIX}*")):
        client.delete(*keys)


@pytest.fixture(scope="module")
def workers(url, fake, redis_url, tmp_path_factory):
    logs = tmp_path_factory.mktemp("workers")
    config = logs / "tether.toml"
    config.write_text(f'[api]\napi_key = "{KEY}"\nbase_url = "{fake.base_url}"\nmax_retries = 0\n')
    pool = Workers(url, logs)
    pool.options = ["--config", str(config), "--heartbeat", "0.3", "--dead-after", "2", "--poll", "0.1"]
    if redis_url:
        pool.options += ["--redis", redis_url, "--redis-prefix", PREFIX, "--budget-limit", "queue:poor=0.000001"]
    for worker in WORKERS:
        pool.cli(worker, *pool.options, "--concurrency", str(CONCURRENCY), "--drain", "5")
    try:
        pool.wait_ready()
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
async def fleet(url, workers, fake) -> AsyncIterator[DistributedFleet]:
    fake.set_latency(0.0, key=KEY)
    async with await DistributedFleet.open(url, prepare=False, poll=0.05) as client:
        yield client


async def until(predicate, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def running(fleet: DistributedFleet, ids: list[str]) -> int:
    return sum([(await fleet.status(i)).state == "running" for i in ids])


async def test_submit_and_get_the_result(url, fleet):
    run_id = await fleet.enqueue(RunSpec("hello fleet", id="greeting"))
    outcome = await fleet.result(run_id)
    status = await fleet.status(run_id)
    assert (outcome.spec_id, outcome.outcome, outcome.text, outcome.turns) == ("greeting", "completed",
                                                                               "hello fleet", 1)
    assert outcome.session_id == status.session_id == f"ses_{run_id}", "the session follows from the run id"
    assert (status.state, status.outcome, status.attempts) == ("done", outcome, 1)
    assert status.executor_id in WORKERS
    store = await open_store(url)
    info = await store.get(outcome.session_id)
    roles = [m.role for m in await store.messages(outcome.session_id)]
    await store.close()
    assert info.status == "completed" and info.turns == 1 and roles == ["user", "assistant"]


async def test_map_keeps_the_order_of_the_specs(fleet):
    outcomes = await fleet.map(RunSpec(f"task {i}", id=str(i)) for i in range(8))
    assert [o.spec_id for o in outcomes] == [str(i) for i in range(8)]
    assert [o.text for o in outcomes] == [f"task {i}" for i in range(8)]


async def test_a_follow_up_continues_the_same_session(url, fleet):
    chain = [await fleet.submit(RunSpec("go"))]
    while chain[-1].text.count("!") < 3:
        chain.append(await fleet.submit(RunSpec(chain[-1].text + "!", session_id=chain[-1].session_id)))
    assert [o.text for o in chain] == ["go", "go!", "go!!", "go!!!"]
    assert len({o.session_id for o in chain}) == 1 and all(o.turns == 1 for o in chain)
    store = await open_store(url)
    assert len(await store.messages(chain[0].session_id)) == 8
    await store.close()


async def test_failing_runs_end_in_categorized_outcomes_and_the_workers_go_on(url, fake, fleet):
    fake.fail_next(server_error(), key=KEY)
    api = await fleet.submit(RunSpec("meets a 500", id="api"))
    rest = await fleet.map([RunSpec("bad tools", id="tools", tools=["nosuch"]), RunSpec("fine", id="fine")])
    assert (api.outcome, api.ok) == ("api_error", False) and "500" in api.error
    by_id = {o.spec_id: o for o in rest}
    assert by_id["tools"].outcome == "validation_error" and "nosuch" in by_id["tools"].error
    assert by_id["fine"].outcome == "completed"
    store = await open_store(url)
    assert (await store.get(api.session_id)).status == "failed"
    await store.close()


async def test_a_higher_priority_run_overtakes_the_queue(url, fake, fleet):
    fake.set_latency(0.3, key=KEY)
    lows = [await fleet.enqueue(RunSpec(f"low {i}")) for i in range(12)]
    await until(lambda: _eq(running(fleet, lows), CONCURRENCY * len(WORKERS)), "every slot busy")
    high = await fleet.enqueue(RunSpec("urgent", priority=9))
    await asyncio.gather(*(fleet.result(i) for i in [*lows, high]))
    order = [r[0] for r in query(url, "SELECT workflow_uuid FROM dbos.workflow_status WHERE workflow_uuid = ANY(%s) "
                                      "ORDER BY started_at_epoch_ms, workflow_uuid", [*lows, high])]
    slots = CONCURRENCY * len(WORKERS)
    # The busy slots, and at worst one dequeue racing on each other slot, went before it; not the rest.
    assert order.index(high) <= 2 * slots - 1, order.index(high)


async def test_cancel_a_queued_and_a_running_run(url, fake, fleet):
    fake.set_latency(1.5, key=KEY)
    held = [await fleet.enqueue(RunSpec(f"held {i}")) for i in range(CONCURRENCY * len(WORKERS))]
    store = await open_store(url)
    try:
        await until(lambda: _all_status(store, [f"ses_{i}" for i in held], "running"), "every slot busy")
        queued = await fleet.enqueue(RunSpec("waiting"))
        await fleet.cancel(queued)
        await fleet.cancel(held[0])
        cancelled_queued, cancelled_running = await fleet.result(queued), await fleet.result(held[0])
        await until(lambda: _all_status(store, [cancelled_running.session_id], "interrupted"),
                    "the cancelled run's session to be marked interrupted", timeout=5)
        fake.set_latency(0.0, key=KEY)
        rest = [await fleet.result(i) for i in held[1:]]
        assert await store.get(cancelled_queued.session_id) is None, "a run cancelled in the queue never started"
    finally:
        await store.close()
    assert cancelled_queued.outcome == cancelled_running.outcome == "cancelled"
    assert not cancelled_queued.ok
    assert [o.outcome for o in rest] == ["completed"] * (len(held) - 1)
    assert (await fleet.status(held[0])).state == "cancelled"


async def test_no_worker_runs_more_than_its_concurrency(url, fake, fleet):
    fake.set_latency(0.3, key=KEY)
    ids = [await fleet.enqueue(RunSpec(f"task {i}")) for i in range(12)]
    most: collections.Counter = collections.Counter()
    done = asyncio.gather(*(fleet.result(i) for i in ids))
    while not done.done():
        rows = query(url, "SELECT executor_id, count(*) FROM dbos.workflow_status WHERE status = 'PENDING' "
                          "AND workflow_uuid = ANY(%s) GROUP BY executor_id", ids)
        for executor, count in rows:
            most[executor] = max(most[executor], count)
        await asyncio.sleep(0.02)
    assert [o.outcome for o in await done] == ["completed"] * 12
    assert set(most) == set(WORKERS), "both workers took runs"
    assert max(most.values()) == CONCURRENCY, most


async def test_the_workers_pace_calls_with_buckets_shared_in_redis(fake, fleet, redis_url):
    if not redis_url:
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set TETHER_TEST_REDIS)")
    from tether.fleet.shared_state import RedisBuckets, open_redis

    # The fake's buckets sit on its manual clock (no refill); Redis refills these 60 requests at 1/s.
    fake.set_limits(Limits(60, 40_000_000, 8_000_000), key=KEY)
    try:
        outcomes = await fleet.map(RunSpec(f"paced {i}") for i in range(4))
    finally:
        fake.set_limits(Limits(10**6, 10**9, 10**9), key=KEY)
    assert [o.outcome for o in outcomes] == ["completed"] * 4
    redis = open_redis(redis_url)
    label = hashlib.sha256(KEY.encode()).hexdigest()[:12]  # the limiter's name for the key, not the key
    levels = await RedisBuckets(redis, prefix=PREFIX).levels(f"{label}/{Settings().model}")
    await redis.aclose()
    assert {name: cap for name, (_, cap) in levels.items()} == {
        "requests": 60, "input_tokens": 40_000_000, "output_tokens": 8_000_000}, "learned from the headers"
    assert levels["requests"][0] < 59, "the four calls were taken from the shared bucket"


async def test_a_queue_over_its_shared_budget_is_refused(fleet, redis_url):
    if not redis_url:
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set TETHER_TEST_REDIS)")
    poor, rich = await fleet.map([RunSpec("too dear", queue="poor"), RunSpec("fine", queue="rich")])
    assert (poor.outcome, rich.outcome) == ("budget_exhausted", "completed")
    assert "queue:poor" in poor.error


def tether(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tether.cli.main", *args], capture_output=True, text=True,
                          timeout=60)


async def test_tether_enqueue_a_file_twice_queues_it_once(url, fleet, tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"id": "a", "task": "alpha"}\n{"task": "beta"}\n')
    first = await asyncio.to_thread(tether, "enqueue", str(tasks), "--db", url, "--tag", "nightly")
    assert first.returncode == 0, first.stderr
    ids = first.stdout.split()
    again = await asyncio.to_thread(tether, "enqueue", str(tasks), "--db", url, "--wait")
    assert again.returncode == 0, again.stderr
    lines = [json.loads(line) for line in again.stdout.splitlines()]
    assert len(ids) == 2 and [line["run_id"] for line in lines] == ids, "the same file names the same runs"
    assert [(line["outcome"], line["text"]) for line in lines] == [("completed", "alpha"), ("completed", "beta")]
    assert lines[0]["spec_id"] == "a"
    assert [(await fleet.status(i)).attempts for i in ids] == [1, 1], "each ran once"


async def test_long_dead_workers_with_nothing_to_recover_are_forgotten(url, workers):
    query(url, "INSERT INTO tether_fleet_workers (executor_id, incarnation, beat_at, state) VALUES "
               "('gone', 'x', now() - interval '2 days', 'stopped'), ('recent', 'x', now() - interval '1 hour', "
               "'running') RETURNING 1")
    async def forgotten() -> bool:
        return query(url, "SELECT 1 FROM tether_fleet_workers WHERE executor_id = 'gone'") == []

    try:
        await until(forgotten, "the long-dead worker's row to go")
        assert query(url, "SELECT state FROM tether_fleet_workers WHERE executor_id = 'recent'") == [("running",)], \
            "a worker dead for less than a day is kept"
    finally:
        query(url, "DELETE FROM tether_fleet_workers WHERE executor_id IN ('gone', 'recent') RETURNING 1")


def test_worker_options_are_checked():
    with pytest.raises(ValueError, match="dead_after .* must exceed two heartbeats"):
        WorkerOptions(heartbeat=2, dead_after=3)
    with pytest.raises(ValueError, match="forget_after .* must be at least dead_after"):
        WorkerOptions(dead_after=60, forget_after=30)


@pytest.fixture(scope="module")
def spares(workers):
    """Two more workers, started together (each test below ends one of them)."""
    for worker in ("w3", "w4"):
        workers.cli(worker, *workers.options)
    workers.wait_ready("w3", "w4")
    return workers


async def test_a_worker_stops_cleanly_on_sigterm(url, spares):
    process = spares.processes["w3"]
    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 15) == 0, spares.log("w3")
    assert query(url, "SELECT state FROM tether_fleet_workers WHERE executor_id = 'w3'") == [("stopped",)]


async def test_a_worker_declared_dead_stops_at_once(url, spares):
    query(url, "UPDATE tether_fleet_workers SET claimed_by = 'someone', claimed_at = now() "
               "WHERE executor_id = 'w4' RETURNING 1")
    assert await asyncio.to_thread(spares.processes["w4"].wait, 10) == 3, spares.log("w4")
    assert "declared dead" in spares.log("w4")


async def _eq(count, want: int) -> bool:
    return await count == want


async def _all_status(store, session_ids: list[str], status: str) -> bool:
    infos = [await store.get(session_id) for session_id in session_ids]
    return all(info is not None and info.status == status for info in infos)
