"""Service runs on the in-process ``Fleet``: start, follow up, interrupt, cancel; stop and resume.

How a run maps onto the fleet:

- **start** (``POST /v1/runs``): the run's session is made at once (or, with ``session_id``, an
  existing one is taken up), then one ``RunSpec`` is submitted: the task, the tenant as its
  ``queue`` (fair sharing between tenants), the run's id as its ``id`` and ``approve`` bound to
  the run, so that tools in "ask" mode wait for a decision over HTTP.
- **follow-up** (``POST …/messages``): a new ``RunSpec`` over the same session with the text as its
  task; ``execute`` resumes the session and continues the conversation. Refused while the run is
  active (409): interrupt it first, or wait for it to rest.
- **budgets** (``[server.budgets]``): both are refused (402, ``budget_exhausted``) once the tenant's
  budget for the month is spent; the tenant's running runs stop at their next model call.
- **interrupt**: the execution's ``RunHandle`` is cancelled. The loop leaves the conversation valid
  (an unfinished reply dropped, interrupted tool calls answered) and the fleet marks the session
  ``interrupted``; the run rests ``idle``. **cancel** does the same and ends the run for good.
- **approvals**: the pending call's future is resolved with yes, no or always.

Each execution has a watcher task, owned here, that awaits its handle and settles the run.

**Shutdown** (``close``): every active execution is cancelled as above, and its session's
metadata records the run as the service's, to resume (``state: "resume"``, the next event number,
the task not yet begun). **Start** (``resume``): those sessions are found and each run resubmitted
under its old id, its event numbers going on where they stopped. A follow-up whose execution had
not begun is resubmitted with its text; one that had begun is finished from the store.

A process killed without a shutdown (SIGKILL, a crash) leaves its sessions ``running``, their
record naming the process (host, pid and the kernel's start time of the process, so a reused pid
is not taken for it). The next service to start on the same host resumes those whose process is
gone, like the ones stopped at shutdown; what the dead process streamed since the submit is
unknown, so their event numbers jump ahead (a reader sees a ``gap``). A run of another host's
process is left as it is (that process may be alive): continue it with ``POST /v1/runs`` and its
``session_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import re
import socket
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tether.agent import events as ev
from tether.api.catalog import Catalog, UnknownModelWarning
from tether.api.client import ModelClient
from tether.config import Settings
from tether.errors import TetherError
from tether.fleet.local import Fleet, RunHandle
from tether.fleet.spec import RunSpec
from tether.server.budgets import TenantBudgets
from tether.server.errors import conflict, invalid, not_found
from tether.server.eventlog import EventLog
from tether.server.metrics import Metrics
from tether.server.runs import Ending, RunConfig, ServiceRun, Totals
from tether.sessions import Sessions, new_id
from tether.store.base import SessionInfo, SessionQuery

log = logging.getLogger("tether.server")
SERVICE = "service"  # the session metadata key of the service's record of a run
STOP_WAIT = 10.0  # seconds an interrupt or cancel waits for the execution to wind down
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")  # a session id that can name a folder


def new_run_id() -> str:
    return f"run_{uuid.uuid4().hex[:20]}"


def _started(pid: int) -> str | None:
    """When the process ``pid`` started, as the kernel counts it (boot id and clock ticks since boot);
    None if there is no such process, or no ``/proc`` to tell."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError):
        return None


def this_process() -> dict[str, Any]:
    """This process, as a run's record names its owner (read each time: a forked child is another)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _started(os.getpid())}


def gone(owner: Any) -> bool:
    """Whether the process that ``owner`` names (a run record's) is known to have ended: it ran on this
    host, and no process with its pid has its start time. Another host's process cannot be told."""
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname() \
            or not isinstance(owner.get("pid"), int):
        return False
    if owner.get("started") is not None:
        return _started(owner["pid"]) != owner["started"]
    try:  # no /proc: the pid alone
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def service_record(info: SessionInfo) -> dict[str, Any]:
    """The service's record of the run of a session (empty if it has none)."""
    record = info.metadata.get(SERVICE)
    return record if isinstance(record, dict) else {}


def session_totals(info: SessionInfo) -> Totals:
    return Totals(info.turns, info.input_tokens, info.output_tokens, info.cache_read_tokens,
                  info.cache_write_tokens, info.dollars)


class RunManager:
    def __init__(self, client: ModelClient | Callable[[RunSpec], ModelClient], sessions: Sessions,
                 settings: Settings, *, metrics: Metrics, workspaces: Path, log_capacity: int,
                 keep_settled: int = 256, redact: Callable[[str], str] = lambda text: text,
                 budgets: TenantBudgets | None = None) -> None:
        self.sessions, self.store, self.settings = sessions, sessions.store, settings
        self.metrics, self.workspaces, self.log_capacity = metrics, workspaces, log_capacity
        self.keep_settled, self.redact, self.budgets = keep_settled, redact, budgets
        self.fleet = Fleet(client, sessions, settings, concurrency=settings.server.concurrency, observe=self._observe)
        self.runs: dict[str, ServiceRun] = {}
        self.catalog = Catalog.load(settings.models)
        self._claimed: dict[str, str] = {}  # session id -> id of the run that holds it
        self._watchers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RunManager:
        await self.fleet.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    # --- starting and continuing ---------------------------------------------------------------

    async def start(self, task: str | None, config: RunConfig, *, session_id: str | None = None) -> ServiceRun:
        model = self.check_model(config.model)
        config = dataclasses.replace(config, model=model)  # pinned for follow-ups and resumes
        if self.budgets is not None:
            await self.budgets.check(config.tenant)
        if session_id is not None:
            await self.sessions.get(session_id)
            if session_id in self._claimed:
                raise conflict(f"session {session_id} is in use by run {self._claimed[session_id]}: "
                               "send it a message instead")
        elif not task:
            raise invalid("give a task (or a session_id to continue)")
        sid = session_id or new_id()
        run = ServiceRun(new_run_id(), sid, config, log=EventLog(self.log_capacity), redact=self.redact, task=task)
        self._claimed[sid] = run.id
        try:
            if session_id is None:
                await self.store.create(SessionInfo(sid, model, config.title or (task or "")[:80],
                                                    list(config.tags), status="running"))
                base = Totals()
            else:
                base = session_totals(await self.sessions.get(sid))
            self.runs[run.id] = run
            await self._submit(run, task, base=base)
        except BaseException:
            self._claimed.pop(sid, None)
            self.runs.pop(run.id, None)
            raise
        return run

    async def follow_up(self, run: ServiceRun, text: str) -> None:
        if self.budgets is not None:
            await self.budgets.check(run.config.tenant)
        if run.active:
            raise conflict(f"run {run.id} is {run.status}: interrupt it, or wait until it rests, "
                           "before sending a message")
        if run.status == "cancelled":
            raise conflict(f"run {run.id} was cancelled; start a new run with its session_id to continue")
        previous = run.status
        run.set_status("queued")  # claims the run before anything is awaited
        try:
            await self._submit(run, text)
        except BaseException:
            run.set_status(previous)
            raise

    async def _submit(self, run: ServiceRun, task: str | None, *, base: Totals | None = None) -> None:
        info = await self.sessions.get(run.session_id)
        record = dict(service_record(info))
        if base is not None or record.get("run_id") != run.id:
            record = {"run_id": run.id, "config": run.config.to_dict(), "created_at": run.created_at.isoformat(),
                      "base": (base or Totals()).__dict__, "task": run.task}
        record.update(state="submitted", pending_task=task, owner=this_process(), next_seq=run.log.next_seq,
                      messages_at_submit=len(await self.store.messages(run.session_id)))
        await self.store.update(run.session_id, metadata={**info.metadata, SERVICE: record})
        handle = self.fleet.submit(self._spec(run, task))
        run.started(handle)
        watcher = asyncio.get_running_loop().create_task(self._watch(run, handle), name=f"tether-watch-{run.id}")
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        run.watcher = watcher

    def _spec(self, run: ServiceRun, task: str | None) -> RunSpec:
        c = run.config
        workspace = str(self.workspace(run.session_id)) if c.tools else None
        return RunSpec(task, model=c.model, tools=list(c.tools), workspace=workspace, limits=dict(c.limits),
                       queue=c.tenant, session_id=run.session_id, id=run.id, title=c.title, tags=list(c.tags),
                       permissions=dict(c.permissions), approve=run.ask)

    async def _watch(self, run: ServiceRun, handle: RunHandle) -> None:
        outcome = await handle
        run.settle(outcome)
        if run.ending != "shutdown":
            self.metrics.runs_settled[run.status] += 1
        if run.status == "cancelled":
            self._claimed.pop(run.session_id, None)
        self._forget_old()

    def _observe(self, handle: RunHandle, event: ev.Event) -> None:
        run = self.runs.get(handle.spec.id or "")
        if run is not None:
            run.on_event(event)
        self.metrics.observe(event)

    # --- stopping ------------------------------------------------------------------------------

    async def interrupt(self, run: ServiceRun) -> None:
        await self._stop(run, "interrupt")

    async def cancel(self, run: ServiceRun) -> None:
        if run.handle is None:
            run.ending = "cancel"
            run.set_status("cancelled")
            self._claimed.pop(run.session_id, None)
            return
        await self._stop(run, "cancel")

    async def _stop(self, run: ServiceRun, why: Ending) -> None:
        handle = run.handle
        if handle is None:
            return
        run.ending = why
        handle.cancel()
        if run.watcher is not None:
            await asyncio.wait({run.watcher}, timeout=STOP_WAIT)

    def decide(self, run: ServiceRun, tool_use_id: str, decision: str) -> None:
        run.decide(tool_use_id, decision)  # type: ignore[arg-type]

    async def close(self) -> None:
        """Cancel every active execution, record the runs to resume, and close the fleet."""
        stopping = [run for run in self.runs.values() if run.handle is not None]
        for run in stopping:
            run.ending = "shutdown"
        self.fleet.cancel()
        await self.fleet.__aexit__(None, None, None)
        if self._watchers:
            await asyncio.wait(set(self._watchers))
        for run in stopping:
            if run.outcome is not None and run.outcome.outcome == "cancelled":
                with contextlib.suppress(Exception):  # the store may be what failed; the run stays interrupted
                    await self._mark_for_resume(run)
        if stopping:
            log.info("stopped %d run(s); they resume when the service starts again", len(stopping))

    async def _mark_for_resume(self, run: ServiceRun) -> None:
        info = await self.sessions.get(run.session_id)
        record = {**service_record(info), "state": "resume", "next_seq": run.log.next_seq}
        await self.store.update(run.session_id, status="interrupted", metadata={**info.metadata, SERVICE: record})

    async def resume(self) -> list[ServiceRun]:
        """Resubmit the runs a previous process stopped at shutdown, and those of a process on this
        host that ended without one."""
        stopped = [info for info in await self._sessions("interrupted") if service_record(info).get("state") == "resume"]
        orphaned = [info for info in await self._sessions("running")
                    if service_record(info).get("state") == "submitted" and gone(service_record(info).get("owner"))]
        resumed = []
        for info in stopped + orphaned:
            try:
                resumed.append(await self._resume(info))
            except (TetherError, KeyError, TypeError, ValueError) as exc:
                log.warning("could not resume the run of session %s: %s: %s", info.id, type(exc).__name__, exc)
        if resumed:
            log.info("resumed %d run(s): %d stopped by the last shutdown, %d of a process that ended without one",
                     len(resumed), len(stopped), len(orphaned))
        return resumed

    async def _sessions(self, status: str) -> list[SessionInfo]:
        found: list[SessionInfo] = []
        while True:
            page = await self.store.list(SessionQuery(status=status, limit=200, offset=len(found)))
            found += page
            if len(page) < 200:
                return found

    async def _resume(self, info: SessionInfo) -> ServiceRun:
        record = info.metadata[SERVICE]
        config = RunConfig.from_dict(record["config"])
        added = len(await self.store.messages(info.id)) - int(record.get("messages_at_submit", 0))  # since the submit
        first = int(record.get("next_seq", 1))
        if record["state"] == "submitted":  # its process died: how many events it sent since is unknown
            first += self.log_capacity * (1 + added)  # more than one message's worth each
        run = ServiceRun(record["run_id"], info.id, config, redact=self.redact, task=record.get("task"),
                         log=EventLog(self.log_capacity, first=first))
        run.created_at = dt.datetime.fromisoformat(record["created_at"])
        run.totals = session_totals(info).minus(Totals(**record.get("base") or {}))
        self.runs[run.id] = run
        self._claimed[info.id] = run.id
        await self._submit(run, None if added > 0 else record.get("pending_task"))  # begun: finished from the store
        return run

    def workspace(self, session_id: str) -> Path:
        """Where the runs of a session work (one folder per session, kept across follow-ups and restarts)."""
        if not _SAFE_ID.fullmatch(session_id):
            raise invalid(f"session id {session_id[:80]!r} cannot name a workspace folder")
        return self.workspaces / session_id

    # --- lookups -------------------------------------------------------------------------------

    def get(self, run_id: str) -> ServiceRun:
        run = self.runs.get(run_id)
        if run is None:
            raise not_found(f"no run {run_id!r} (runs are kept in memory; the session of a forgotten run is "
                            "still in /v1/sessions)")
        return run

    def listing(self, *, status: str | None = None, tenant: str | None = None, limit: int = 100) -> list[ServiceRun]:
        runs = [r for r in self.runs.values() if (status is None or r.status == status)
                and (tenant is None or r.config.tenant == tenant)]
        runs.sort(key=lambda r: (not r.active, -r.updated_at.timestamp()))
        return runs[:limit]

    def holder(self, session_id: str) -> ServiceRun | None:
        run_id = self._claimed.get(session_id)
        return self.runs.get(run_id) if run_id else None

    def release(self, session_id: str) -> None:
        """Forget a session's run (its session is being deleted)."""
        run_id = self._claimed.pop(session_id, None)
        if run_id is not None:
            self.runs.pop(run_id, None)

    def check_model(self, model: str | None) -> str:
        """The catalog id of ``model`` (None: the configured default); unknown or retired ones are refused."""
        name = model or self.settings.model
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", UnknownModelWarning)
                return self.catalog.get(name).id
        except UnknownModelWarning:
            raise invalid(f"unknown model {name!r}: use a model of tether's catalog, or add it under "
                          "[models] in tether.toml") from None
        except TetherError as exc:
            raise invalid(str(exc)) from None

    def _forget_old(self) -> None:
        settled = [r for r in self.runs.values() if not r.active and r.handle is None]
        if len(settled) <= self.keep_settled:
            return
        settled.sort(key=lambda r: r.updated_at)
        for run in settled[: len(settled) - self.keep_settled]:
            self.runs.pop(run.id, None)
            if self._claimed.get(run.session_id) == run.id:
                self._claimed.pop(run.session_id)
