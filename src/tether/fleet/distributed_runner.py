"""One agent run as a DBOS workflow: what a worker executes, and what DBOS replays after a crash.

The workflow ``tether.fleet.run`` takes a ``RunSpec`` as a dict and has two steps:

1. ``prepare`` fixes the run's session id (the spec's own, or one derived from the workflow id, so
   that every attempt of the workflow works on the same session) and notes where the session
   stood before the run: its message count and totals.
2. ``execute`` runs the spec to its end with ``tether.fleet.execute.execute`` (or the worker's own
   run function) against the session store, and returns the ``RunOutcome`` as a dict.

**What DBOS replays.** When a worker dies, another one recovers the workflow (see
``distributed_worker``) and runs the function again from the top. ``prepare`` finished the first
time, so DBOS returns its recorded output instead of running it: the same session id, the same
starting point. ``execute`` never finished, so it runs again, and because the session exists it
*resumes* it: turns already recorded are not asked of the model again, and a tool call is claimed
in the session store's ledger before it runs, so a call that finished is answered from the ledger
and a call cut short is reported to the model as interrupted — never run twice. Whether the task
message itself was recorded is read from the store (a user message with its text, after the
messages ``prepare`` counted), so the task is sent once, however many attempts there are. If
``execute`` did finish and only the workflow's own end was lost, DBOS returns the recorded outcome
and nothing runs.

DBOS durability is per step; the session store's is per turn and per tool call. The agent loop is
one step because its progress is already journalled at a finer grain than DBOS steps would give.

The outcome's turns, tokens and dollars are the session's totals minus those ``prepare`` saw, so a
run that was recovered part-way reports the whole run, not only its last attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from tether.errors import TetherError, UserError
from tether.fleet.distributed_dbos import DBOS, DBOSConfiguredInstance, DBOSMaxStepRetriesExceeded
from tether.fleet.spec import RunOutcome, RunSpec
from tether.sessions import Sessions
from tether.store.base import StoredMessage

log = logging.getLogger("tether.fleet.distributed")

APP_NAME = "tether"
# The workflow's version. Workers dequeue, and recover, only workflows of their own version: bump it
# when the workflow's steps change in a way a half-done run of the old version could not replay.
APP_VERSION = "tether-fleet-1"
QUEUE = "tether-runs"
WORKFLOW = "tether.fleet.run"
CLASS = "tether.fleet.Runner"
INSTANCE = "worker"

RunFunction = Callable[[RunSpec], Awaitable[RunOutcome]]
_TOTALS = ("turns", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "dollars")


def session_id_for(workflow_id: str) -> str:
    """The session a run works on when its spec names none: a function of the workflow id alone."""
    return f"ses_{workflow_id}"


def _retry_error(exc: BaseException) -> bool:
    """Retry ``execute`` after an infrastructure failure (a dropped connection, a store conflict with
    a zombie), not after a mistake in the spec: resuming is safe, the ledger sees to that."""
    return not isinstance(exc, UserError)


@DBOS.dbos_class(CLASS)
class Runner(DBOSConfiguredInstance):
    """The worker's side of the workflow. One per process (DBOS registers it by name)."""

    def __init__(self, sessions: Sessions, run: RunFunction) -> None:
        self.sessions, self._run = sessions, run
        self.running: dict[str, asyncio.Task[Any]] = {}  # by workflow id
        super().__init__(INSTANCE)

    @DBOS.workflow(name=WORKFLOW)
    async def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        workflow_id = DBOS.workflow_id or ""
        task = asyncio.current_task()
        assert task is not None
        self.running[workflow_id] = task
        start: dict[str, Any] = {}
        try:
            start = await self.prepare(spec, workflow_id)
            return await self.execute(spec, start)
        except (TetherError, DBOSMaxStepRetriesExceeded) as exc:
            cause = exc.errors[-1] if isinstance(exc, DBOSMaxStepRetriesExceeded) and exc.errors else exc
            log.warning("run %s failed: %s", workflow_id, cause)
            session_id = start.get("session_id") or spec.get("session_id") or session_id_for(workflow_id)
            return failed(spec, session_id, cause).to_dict()
        except asyncio.CancelledError:  # cancelled, or its worker is stopping: left resumable
            if start:
                with contextlib.suppress(Exception):
                    await self.sessions.store.update(start["session_id"], status="interrupted")
            raise
        finally:
            self.running.pop(workflow_id, None)

    @DBOS.step(name="tether.fleet.prepare")
    async def prepare(self, spec: dict[str, Any], workflow_id: str) -> dict[str, Any]:
        session_id = spec.get("session_id") or session_id_for(workflow_id)
        info = await self.sessions.store.get(session_id)
        seq = len(await self.sessions.store.messages(session_id)) if info is not None else 0
        totals = {name: getattr(info, name) if info is not None else 0 for name in _TOTALS}
        return {"session_id": session_id, "seq": seq, **totals}

    @DBOS.step(name="tether.fleet.execute", retries_allowed=True, max_attempts=3, interval_seconds=1.0,
               should_retry=_retry_error)
    async def execute(self, spec: dict[str, Any], start: dict[str, Any]) -> dict[str, Any]:
        session_id = start["session_id"]
        run = RunSpec.from_dict(spec)
        store = self.sessions.store
        if run.task and await store.get(session_id) is not None:
            since = (await store.messages(session_id))[start["seq"]:]
            if _recorded(run.task, since):
                run = dataclasses.replace(run, task=None)  # an earlier attempt sent it: this one resumes
        outcome = await self._run(dataclasses.replace(run, session_id=session_id))
        info = await store.get(session_id)
        if info is not None:
            totals = {name: getattr(info, name) - start[name] for name in _TOTALS}
            outcome = dataclasses.replace(outcome, **totals)
        return outcome.to_dict()


def _recorded(task: str, messages: list[StoredMessage]) -> bool:
    """Whether ``task`` is the text of one of these user messages (alone, or after tool results)."""
    return any(m.role == "user" and any(b.get("type") == "text" and b.get("text") == task for b in m.content)
               for m in messages)


def failed(spec: dict[str, Any], session_id: str, exc: BaseException) -> RunOutcome:
    """The outcome of a run that raised instead of ending: its error category and message."""
    category = exc.category if isinstance(exc, TetherError) else "system_error"
    return RunOutcome(spec.get("id"), session_id, category, error=f"{type(exc).__name__}: {exc}")
