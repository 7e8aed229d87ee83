"""The distributed fleet: runs queued in PostgreSQL, run by worker processes on any number of machines.

Built on DBOS (durable workflows and queues on PostgreSQL; pinned to ``dbos==3.4.0``). The pieces:

- ``distributed_runner``: an agent run as a DBOS workflow (two steps: ``prepare``, ``execute``),
  and what DBOS replays when a run is recovered.
- ``distributed_client``: ``DistributedFleet``, the client: ``enqueue(spec) -> run id``,
  ``status(id)``, ``result(id)``, ``cancel(id)``. It needs no worker in its process.
- ``distributed_worker``: ``Worker``, one per process: dequeues and runs, heartbeats, recovers the
  runs of dead workers, stops cleanly.
- ``distributed_liveness``: the heartbeat table and the claim on a dead worker.
- ``shared_state``: rate-limit buckets and budgets shared by every worker (Redis).

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
import functools
import signal
from collections.abc import AsyncIterator

from tether.api.client import AnthropicClient, ModelClient
from tether.config import Settings
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
    "Worker",
    "WorkerOptions",
    "dbos_url",
    "model_client",
    "prepare_database",
    "serve_worker",
    "session_id_for",
]


def model_client(settings: Settings) -> ModelClient:
    """The worker's ``ModelClient``: the SDK client, wrapped by the fleet's limits when
    ``tether.fleet.compose`` offers them (``build_client``)."""
    client = AnthropicClient(api_key=settings.api.api_key, base_url=settings.api.base_url,
                             max_retries=settings.api.max_retries, timeout=settings.api.timeout)
    try:
        from tether.fleet.compose import build_client
    except ImportError:
        return client
    return build_client(client, settings)


async def serve_worker(url: str, *, settings: Settings, options: WorkerOptions = WorkerOptions(),
                       store_url: str | None = None, client: ModelClient | None = None,
                       stop: asyncio.Event | None = None) -> int:
    """Run a worker until SIGTERM or SIGINT (or ``stop``), with the session store at ``store_url``
    (default: ``url``) and runs made by ``execute``. Returns the exit code."""
    stop = stop or asyncio.Event()
    async with _resources(url, store_url, settings, client) as (sessions, model):
        run: RunFunction = functools.partial(execute, client=model, sessions=sessions, settings=settings)
        worker = Worker(url, sessions=sessions, run=run, options=options)
        with _stop_on_signals(stop):
            return await worker.serve(stop)


@contextlib.asynccontextmanager
async def _resources(url: str, store_url: str | None, settings: Settings,
                     client: ModelClient | None) -> AsyncIterator[tuple[Sessions, ModelClient]]:
    store = await open_store(store_url or url)
    model = client or model_client(settings)
    try:
        yield Sessions(store), model
    finally:
        if client is None and (aclose := getattr(model, "aclose", None)) is not None:
            await aclose()
        await store.close()


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event):
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
