"""``DistributedFleet``: put runs on the durable queue, and ask how they are doing, from any process.

    fleet = await DistributedFleet.open("postgresql://tether@db/tether")
    run_id = await fleet.enqueue(RunSpec(task="fix the tests", tools=["bash", "editor"]))
    print(await fleet.status(run_id))
    outcome = await fleet.result(run_id)      # waits for a worker to finish it
    await fleet.close()

The client talks only to PostgreSQL (a ``DBOSClient``): it runs no workflow, needs no worker in the
same process, and works before any worker has started (runs wait in the queue).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tether.errors import ConfigError, UserError
from tether.fleet.distributed_dbos import DBOS, DBOSClient, DBOSNonExistentWorkflowError
from tether.fleet.distributed_runner import (
    APP_NAME,
    APP_VERSION,
    CLASS,
    INSTANCE,
    QUEUE,
    WORKFLOW,
    failed,
    session_id_for,
)
from tether.fleet.spec import RunOutcome, RunSpec

RunState = Literal["queued", "running", "done", "failed", "cancelled"]
_STATES: dict[str, RunState] = {
    "ENQUEUED": "queued", "DELAYED": "queued", "PENDING": "running", "SUCCESS": "done", "ERROR": "failed",
    "CANCELLED": "cancelled", "MAX_RECOVERY_ATTEMPTS_EXCEEDED": "failed",
}
# tether's priority is "higher first, 0 by default"; DBOS's is "lower first, 1..2**31-1".
PRIORITY_ZERO = 1_000_000
DEFAULT_CONCURRENCY = 8
DEFAULT_POLL = 0.5


class RunNotFound(UserError):
    category = "not_found"


@dataclass(frozen=True)
class RunStatus:
    """Where a distributed run stands. ``outcome`` is set once it is ``done`` (which may be a failed run:
    see ``outcome.ok``)."""

    id: str
    state: RunState
    session_id: str
    spec_id: str | None
    executor_id: str | None  # the worker running it, or that ran it last
    attempts: int  # how many times a worker has started it (more than 1 after a recovery)
    created_at: float | None  # Unix time, seconds
    updated_at: float | None
    outcome: RunOutcome | None = None


def dbos_url(url: str) -> str:
    """The system database URL for DBOS, from a tether store URL (``postgresql[+driver]://…``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ConfigError(f"the distributed fleet needs a PostgreSQL URL (postgresql://…), not {scheme or url!r}")
    return f"postgresql://{rest}"


def dbos_priority(priority: int) -> int:
    return max(1, min(2**31 - 1, PRIORITY_ZERO - priority))


async def prepare_database(url: str, *, concurrency: int | None = None, poll: float = DEFAULT_POLL,
                           client: DBOSClient | None = None) -> None:
    """Create or upgrade DBOS's tables, and make sure the run queue exists.

    ``concurrency`` (runs at once on each worker) is a property of the queue, shared by all workers:
    given, it replaces the stored value; ``None`` keeps it (``DEFAULT_CONCURRENCY`` for a new queue).
    """
    await asyncio.to_thread(DBOS.migrate, dbos_url(url))
    own = client is None
    client = client or DBOSClient(system_database_url=dbos_url(url), application_name=APP_NAME)
    try:
        await asyncio.to_thread(
            client.register_queue, QUEUE, worker_concurrency=concurrency or DEFAULT_CONCURRENCY,
            polling_interval_sec=poll, on_conflict="never_update" if concurrency is None else "always_update",
            application_name=APP_NAME)
    finally:
        if own:
            client.destroy()


class DistributedFleet:
    """The distributed backend seen from a client: enqueue, status, result, cancel."""

    def __init__(self, client: DBOSClient, *, poll: float = 0.2) -> None:
        self.client, self.poll = client, poll

    @classmethod
    async def open(cls, url: str, *, prepare: bool = True, poll: float = 0.2) -> DistributedFleet:
        """A client of the fleet whose database is ``url``. ``prepare``: create DBOS's tables and the
        queue if they are missing (harmless when they exist)."""
        if prepare:
            await prepare_database(url)
        client = await asyncio.to_thread(DBOSClient, system_database_url=dbos_url(url), application_name=APP_NAME)
        return cls(client, poll=poll)

    async def close(self) -> None:
        await asyncio.to_thread(self.client.destroy)

    async def __aenter__(self) -> DistributedFleet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def enqueue(self, spec: RunSpec | Mapping[str, Any], *, run_id: str | None = None) -> str:
        """Queue ``spec``; returns the run id (the DBOS workflow id). Giving ``run_id`` makes the call
        idempotent: enqueuing the same id again returns it and queues nothing."""
        spec = RunSpec.from_dict(spec.to_dict() if isinstance(spec, RunSpec) else spec)  # checked here, not later
        run_id = run_id or f"run_{uuid.uuid4().hex}"
        options: Any = {
            "workflow_name": WORKFLOW, "queue_name": QUEUE, "class_name": CLASS, "instance_name": INSTANCE,
            "workflow_id": run_id, "app_version": APP_VERSION, "priority": dbos_priority(spec.priority),
            "application_name": APP_NAME,
        }
        handle = await self.client.enqueue_async(options, spec.to_dict())
        return handle.get_workflow_id()

    async def status(self, run_id: str) -> RunStatus:
        found = await asyncio.to_thread(self.client.list_workflows, workflow_ids=[run_id])
        if not found:
            raise RunNotFound(f"no distributed run {run_id!r}")
        info = found[0]
        spec = _spec_of(info.input)
        state = _STATES.get(info.status, "running")
        outcome = None
        if info.status == "SUCCESS" and isinstance(info.output, Mapping):
            outcome = RunOutcome(**info.output)
        elif state in ("failed", "cancelled"):
            outcome = _ended_badly(run_id, spec, info.status, info.error)
        return RunStatus(run_id, state, spec.get("session_id") or session_id_for(run_id), spec.get("id"),
                         info.executor_id, info.recovery_attempts or 0, _seconds(info.created_at),
                         _seconds(info.updated_at), outcome)

    async def result(self, run_id: str, *, timeout: float | None = None) -> RunOutcome:
        """The run's outcome, waiting for it to end. A run that raised, was cancelled, or ran out of
        recovery attempts is an outcome too (``ok`` false), not an exception."""
        try:
            handle = await self.client.retrieve_workflow_async(run_id)
        except DBOSNonExistentWorkflowError:
            raise RunNotFound(f"no distributed run {run_id!r}") from None
        try:
            output = await asyncio.wait_for(handle.get_result(polling_interval_sec=self.poll), timeout)
        except (TimeoutError, asyncio.CancelledError):
            raise
        except Exception:
            status = await self.status(run_id)
            assert status.outcome is not None, status
            return status.outcome
        return RunOutcome(**output)

    async def submit(self, spec: RunSpec | Mapping[str, Any]) -> RunOutcome:
        """Enqueue ``spec`` and wait for its outcome."""
        return await self.result(await self.enqueue(spec))

    async def map(self, specs: Iterable[RunSpec | Mapping[str, Any]]) -> list[RunOutcome]:
        """Enqueue every spec, then wait for them all; their outcomes in the order of ``specs``."""
        ids = [await self.enqueue(spec) for spec in specs]
        return list(await asyncio.gather(*(self.result(run_id) for run_id in ids)))

    async def cancel(self, run_id: str) -> None:
        """Cancel a queued or running run. A queued one never starts; a running one is stopped by its
        worker within a heartbeat, its session marked ``interrupted`` (resumable). Its outcome is
        "cancelled"."""
        await self.client.cancel_workflow_async(run_id)


def _spec_of(inputs: Any) -> dict[str, Any]:
    args = (inputs or {}).get("args") if isinstance(inputs, Mapping) else getattr(inputs, "args", None)
    return dict(args[0]) if args and isinstance(args[0], Mapping) else {}


def _ended_badly(run_id: str, spec: dict[str, Any], status: str, error: BaseException | None) -> RunOutcome:
    session_id = spec.get("session_id") or session_id_for(run_id)
    if status == "CANCELLED":
        return RunOutcome(spec.get("id"), session_id, "cancelled", error="the run was cancelled")
    if status == "MAX_RECOVERY_ATTEMPTS_EXCEEDED":
        return RunOutcome(spec.get("id"), session_id, "system_error",
                          error="the run was started too many times without finishing")
    return failed(spec, session_id, error or RuntimeError("the run failed"))


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


__all__ = ["DistributedFleet", "RunNotFound", "RunState", "RunStatus", "dbos_priority", "dbos_url",
           "prepare_database"]
