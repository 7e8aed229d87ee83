"""A worker process of the distributed fleet: dequeue runs, run them, watch the other workers.

    worker = Worker(url, sessions=sessions, run=run, options=WorkerOptions(concurrency=4))
    code = await worker.serve(stop)           # until ``stop`` is set (SIGTERM), or it is fenced

What ``serve`` does, in order:

1. registers in the heartbeat table (``distributed_liveness``) under its executor id;
2. launches DBOS (no admin server; the queue poller and any startup recovery of its own executor
   id's pending runs begin here) on the running event loop, so workflows run on this loop, beside
   the store and the model client;
3. registers the run queue (its per-worker concurrency is the queue's, see ``prepare_database``);
4. beats every ``heartbeat`` seconds, and every ``heartbeat`` seconds looks for dead workers with
   pending runs, claims each (one winner) and has DBOS re-queue its runs
   (``recover_pending_workflows``), which any live worker then picks up;
5. on ``stop``: stops dequeuing, waits up to ``drain`` seconds for running runs, cancels the rest
   (they stay PENDING in DBOS, their sessions resumable), shuts DBOS down and marks itself
   ``stopped`` so the others recover the cancelled runs at once.

**Timeouts.** A worker is dead after ``dead_after`` seconds without a beat (15 s by default, with a
beat every 2 s: seven missed beats). A run on a dead worker is taken over within about
``dead_after + heartbeat`` seconds, plus the queue's polling interval. A claim lapses after
``lease`` seconds (``2 * dead_after``), so a recoverer that dies half-way is covered.

**At-least-once, and why it is enough.** Recovery re-runs the workflow; DBOS skips the steps that
finished (see ``distributed_runner``) and re-runs the one that was cut short, ``execute``, which
resumes the session. The session store makes that safe: each turn was recorded before its tools
ran, each tool call is claimed in the ledger before it runs, so no tool call runs twice. A model
call that was streaming when the worker died is made again (its response was never recorded): it
is paid for twice, and that is the cost of at-least-once.

**Zombies.** A worker that stalls (not dies) for longer than ``dead_after`` is claimed like a dead
one. Its next beat is refused, and it stops at once (exit code 3) without finishing anything; until
then both copies may run, and the ledger still lets only one of them run each tool call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tether.fleet.distributed_client import DEFAULT_CONCURRENCY, DEFAULT_POLL, dbos_url
from tether.fleet.distributed_dbos import DBOS, recover_pending_workflows
from tether.fleet.distributed_liveness import Liveness
from tether.fleet.distributed_runner import APP_NAME, APP_VERSION, QUEUE, RunFunction, Runner
from tether.sessions import Sessions
from tether.store import engine as engines

log = logging.getLogger("tether.fleet.distributed")

EXIT_OK = 0
EXIT_FENCED = 3  # declared dead by the others (or replaced by a newer process with the same id)


@dataclass(frozen=True)
class WorkerOptions:
    executor_id: str | None = None  # None: "<host>-<pid>". Give a stable id to recover at restart.
    concurrency: int | None = None  # runs at once per worker; None keeps the queue's setting
    heartbeat: float = 2.0
    dead_after: float = 15.0
    lease: float | None = None  # None: 2 * dead_after
    forget_after: float = 86_400.0  # a dead worker's row (once it has no pending runs) is then deleted
    drain: float = 30.0  # seconds a stop waits for running runs before cancelling them
    poll: float = DEFAULT_POLL  # seconds between two looks at the queue
    log_level: str = "WARNING"  # DBOS's own logging

    def __post_init__(self) -> None:
        if self.dead_after <= 2 * self.heartbeat:
            raise ValueError(f"dead_after ({self.dead_after}s) must exceed two heartbeats ({self.heartbeat}s)")
        if self.forget_after < self.dead_after:
            raise ValueError(f"forget_after ({self.forget_after}s) must be at least dead_after ({self.dead_after}s)")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")


class Worker:
    """One worker: a DBOS executor that runs ``run`` for each dequeued spec. One per process."""

    def __init__(self, url: str, *, sessions: Sessions, run: RunFunction,
                 options: WorkerOptions = WorkerOptions()) -> None:
        self.url, self.options = url, options
        self.executor_id = options.executor_id or f"{socket.gethostname()}-{os.getpid()}"
        self.runner = Runner(sessions, run)
        self.recovered: list[str] = []  # executors whose runs this worker recovered
        self._lease = options.lease or 2 * options.dead_after
        self._fenced = False
        self._last_beat = 0.0

    async def serve(self, stop: asyncio.Event) -> int:
        """Run until ``stop`` is set or this worker is fenced. Returns an exit code."""
        engine = engines.make_engine(engines.resolve_url(self.url))
        liveness = Liveness(engine, self.executor_id, uuid.uuid4().hex)
        try:
            await liveness.create_table()
            await liveness.register()
            self._last_beat = asyncio.get_running_loop().time()
            self._launch()
            try:
                await DBOS.register_queue_async(
                    QUEUE, worker_concurrency=self.options.concurrency or DEFAULT_CONCURRENCY,
                    polling_interval_sec=self.options.poll,
                    on_conflict="never_update" if self.options.concurrency is None else "always_update")
                log.info("worker %s serving queue %s", self.executor_id, QUEUE)
                await self._pulse(liveness, stop)
            except BaseException:  # a failure, or the caller cancelled us: no drain
                await self._shutdown(0.0)
                raise
            await self._shutdown(0.0 if self._fenced else self.options.drain)
            if not self._fenced:
                await liveness.stopped()
        finally:
            await engine.dispose()
        return EXIT_FENCED if self._fenced else EXIT_OK

    async def _pulse(self, liveness: Liveness, stop: asyncio.Event) -> None:
        """Beat, recover dead workers, stop cancelled runs: each every ``heartbeat``, until ``stop``."""
        async with asyncio.TaskGroup() as group:
            pulses = [group.create_task(self._every(pulse, liveness, stop))
                      for pulse in (self._beat, self._recover_dead, self._cancel_cancelled)]
            await stop.wait()
            for pulse in pulses:
                pulse.cancel()

    def _launch(self) -> None:
        config: Any = {
            "name": APP_NAME, "system_database_url": dbos_url(self.url), "executor_id": self.executor_id,
            "application_version": APP_VERSION, "log_level": self.options.log_level,
            "run_admin_server": False,  # DBOS 3.4.0 has no admin server; older and newer ones listen on 3001
        }
        DBOS(config=config)
        DBOS.launch()  # on this loop's thread, so that async workflows run on this loop

    async def _every(self, pulse: Callable[[Liveness], Any], liveness: Liveness, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if await pulse(liveness) is False:
                    stop.set()
                    return
            except Exception as exc:  # the database is unreachable, for a while: keep trying
                log.warning("worker %s: %s failed: %s", self.executor_id, pulse.__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.heartbeat)

    async def _beat(self, liveness: Liveness) -> bool:
        now = asyncio.get_running_loop().time()
        try:
            alive = await liveness.beat()
        except Exception:
            if now - self._last_beat <= self.options.dead_after:
                raise
            log.error("worker %s could not beat for %.0fs: the others may have taken over its runs; stopping now",
                      self.executor_id, now - self._last_beat)
            self._fenced = True
            return False
        if alive:
            self._last_beat = now
            return True
        log.error("worker %s was declared dead by another worker (or replaced): stopping now", self.executor_id)
        self._fenced = True
        return False

    async def _recover_dead(self, liveness: Liveness) -> None:
        dead = await liveness.dead(self.options.dead_after, self._lease)
        if not dead:
            return
        pending = await DBOS.list_workflows_async(status="PENDING", executor_id=dead, load_input=False,
                                                  load_output=False)
        holding = {w.executor_id for w in pending if w.executor_id}
        for executor_id in sorted(holding):
            if await liveness.claim(executor_id, self.options.dead_after, self._lease):
                handles = await asyncio.to_thread(recover_pending_workflows, [executor_id])
                self.recovered.append(executor_id)
                log.warning("worker %s recovered %d run(s) of dead worker %s", self.executor_id, len(handles),
                            executor_id)
        if forgotten := await liveness.forget(sorted(set(dead) - holding), self.options.forget_after):
            log.info("worker %s forgot %d long-dead worker(s)", self.executor_id, forgotten)

    async def _cancel_cancelled(self, liveness: Liveness) -> None:
        """Stop the runs held here that a client cancelled (``DistributedFleet.cancel``)."""
        if not self.runner.running:
            return
        cancelled = await DBOS.list_workflows_async(workflow_ids=list(self.runner.running), status="CANCELLED",
                                                    load_input=False, load_output=False)
        for workflow in cancelled:
            if (task := self.runner.running.get(workflow.workflow_id)) is not None:
                log.info("worker %s: run %s was cancelled", self.executor_id, workflow.workflow_id)
                task.cancel()

    async def _shutdown(self, drain: float) -> None:
        """Stop dequeuing, let running runs finish for ``drain`` seconds, cancel the rest, stop DBOS.

        DBOS's ``destroy`` stops the queue pollers at once, then waits (in its thread) for the runs
        in flight; they go on meanwhile on this loop. A cancelled run stays PENDING in DBOS.
        """
        if drain and self.runner.running:  # (DBOS's wait sleeps a second before it first looks)
            destroy = asyncio.create_task(asyncio.to_thread(
                DBOS.destroy, workflow_completion_timeout_sec=math.ceil(drain) + 2))
            if self.runner.running:
                await asyncio.wait(set(self.runner.running.values()), timeout=drain)
            await self._cancel_runs()
            await destroy
        else:
            await self._cancel_runs()
            await asyncio.to_thread(DBOS.destroy)
        await self._cancel_runs()  # one a poller handed over while stopping

    async def _cancel_runs(self) -> None:
        running = set(self.runner.running.values())
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
