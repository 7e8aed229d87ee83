"""The distributed fleet: runs queued in PostgreSQL, run by worker processes on any number of machines.

Built on DBOS (durable workflows and queues on PostgreSQL; pinned to ``dbos==3.4.0``). The pieces:

- ``distributed_runner``: an agent run as a DBOS workflow (two steps: ``prepare``, ``execute``),
  and what DBOS replays when a run is recovered.
- ``distributed_client``: ``DistributedFleet``, the client: ``enqueue(spec) -> run id``,
  ``status(id)``, ``result(id)``, ``cancel(id)``. It needs no worker in its process.
- ``distributed_worker``: ``Worker``, one per process: dequeues and runs, heartbeats, recovers the
  runs of dead workers, stops cleanly.
- ``distributed_liveness``: the heartbeat table and the claim on a dead worker.
- ``shared_state``: rate-limit buckets and budgets shared by every worker (Redis), wired into each
  run's ``ModelClient`` through ``compose.build_client`` (``client_factory``).

**One database.** DBOS's system tables (schema ``dbos``), the heartbeat table
(``tether_fleet_workers``) and, by default, tether's session store (``sessions``, ``messages``,
``tool_ledger``, … in the default schema) live in the same PostgreSQL database, so one URL
configures a worker and one backup covers it. The store may live elsewhere (``store_url``); the
heartbeats always sit beside DBOS's tables, since they describe DBOS executors.

**Queue.** One DBOS queue, ``tether-runs``. Its per-worker concurrency is a setting of the queue,
stored in the database and shared by all workers (``tether worker --concurrency N`` sets it).
``RunSpec.priority`` orders the queue (higher first); ``RunSpec.queue`` (the tenant) travels with
the run for budgets and rate limits but does not get a fair share of the queue as it does in the
local fleet: runs start in priority order, first come first served within a priority.

**Run ids and sessions.** A run's id is its DBOS workflow id (``run_<hex>``, or one the caller
gives to make enqueueing idempotent). Its session is the spec's ``session_id`` if it names one,
else ``ses_<run id>``: a function of the run id, so every attempt of a recovered run resumes the
same session.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from tether.api.client import ModelClient
from tether.config import Settings
from tether.fleet.breaker import Breakers
from tether.fleet.buckets import BucketStore
from tether.fleet.budget import BudgetLedger
from tether.fleet.compose import FleetOptions, base_client, build_client, scopes_for
from tether.fleet.distributed_client import (
    DistributedFleet,
    RunNotFound,
    RunState,
    RunStatus,
    dbos_url,
    prepare_database,
)
from tether.fleet.distributed_runner import APP_VERSION, QUEUE, RunFunction, session_id_for
from tether.fleet.distributed_worker import EXIT_FENCED, EXIT_OK, Worker, WorkerOptions
from tether.fleet.execute import execute
from tether.fleet.ratelimit import RateLimiter
from tether.fleet.spec import RunOutcome, RunSpec
from tether.sessions import Sessions
from tether.store.sql import open_store

__all__ = [
    "APP_VERSION",
    "EXIT_FENCED",
    "EXIT_OK",
    "QUEUE",
    "DistributedFleet",
    "RunFunction",
    "RunNotFound",
    "RunState",
    "RunStatus",
    "SharedState",
    "Worker",
    "WorkerOptions",
    "client_factory",
    "dbos_url",
    "prepare_database",
    "serve_worker",
    "session_id_for",
]


@dataclass(frozen=True)
class SharedState:
    """Where the workers share rate-limit buckets and budgets: a Redis URL and a key prefix. Without
    one, each worker keeps its own buckets (the API's headers still correct them) and no budgets.
    ``limits`` (dollars by scope, ``"queue:*"`` patterns too) are written to the shared ledger when
    the worker starts: give every worker the same ones."""

    redis_url: str | None = None
    prefix: str = "tether:"
    limits: Mapping[str, float] = field(default_factory=dict)  # budgets to set at start, by scope


def client_factory(settings: Settings, base: ModelClient, *, buckets: BucketStore | None = None,
                   budgets: BudgetLedger | None = None) -> Callable[[RunSpec], ModelClient]:
    """A ``ModelClient`` for each run: ``compose.build_client``'s stack over the shared ``base``,
    with one rate limiter and one set of breakers for the worker (its buckets in ``buckets`` when
    shared), and the run's budgets (``run:<session>``, ``queue:<queue>``, ``fleet``) in ``budgets``.
    ``api.max_retries`` retries per call, by ``RetryingClient`` (the SDK's own are off)."""
    label = hashlib.sha256((settings.api.api_key or "").encode()).hexdigest()[:12]
    limiter = RateLimiter(buckets, key=label)
    breakers = Breakers()
    options = FleetOptions(retry_attempts=settings.api.max_retries + 1)

    def client_for(spec: RunSpec) -> ModelClient:
        return build_client(settings, options, base=base, limiter=limiter, breakers=breakers, budgets=budgets,
                            scopes=scopes_for(run=spec.session_id, queue=spec.queue))

    return client_for


async def serve_worker(url: str, *, settings: Settings, options: WorkerOptions | None = None,
                       store_url: str | None = None, shared: SharedState | None = None,
                       base: ModelClient | None = None, stop: asyncio.Event | None = None) -> int:
    """Run a worker until SIGTERM or SIGINT (or ``stop``), with the session store at ``store_url``
    (default: ``url``), each run made by ``execute`` with a client from ``client_factory`` over
    ``base`` (default: the SDK client of ``settings.api``). Returns the exit code."""
    stop, shared = stop or asyncio.Event(), shared or SharedState()
    async with contextlib.AsyncExitStack() as stack:
        store = await open_store(store_url or url)
        stack.push_async_callback(store.close)
        sessions = Sessions(store)
        if base is None:
            base = base_client(settings)
            stack.push_async_callback(base.aclose)
        buckets = budgets = None
        if shared.redis_url:
            from tether.fleet.shared_state import RedisBuckets, RedisBudgets, open_redis

            redis = open_redis(shared.redis_url)
            stack.push_async_callback(redis.aclose)
            buckets, budgets = RedisBuckets(redis, prefix=shared.prefix), RedisBudgets(redis, prefix=shared.prefix)
            for scope, dollars in shared.limits.items():
                await budgets.set_limit(scope, dollars)
        client_for = client_factory(settings, base, buckets=buckets, budgets=budgets)

        async def run(spec: RunSpec) -> RunOutcome:
            return await execute(spec, client=client_for(spec), sessions=sessions, settings=settings)

        worker = Worker(url, sessions=sessions, run=run, options=options or WorkerOptions())
        with _stop_on_signals(stop):
            return await worker.serve(stop)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
