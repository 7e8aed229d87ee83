"""A service run: one conversation over one session, driven by the fleet one execution at a time.

A run starts with a task; each follow-up message is a new execution of the fleet over the same
session; an interrupt stops the execution under way and leaves the run ``idle``; a cancel ends it.
Its status::

    queued ──► running ◄──► waiting_approval        (an "ask" tool call waits for a decision)
                  │
                  ├──► completed | failed            (the execution ended; a follow-up queues it again)
                  ├──► idle                          (interrupted; a follow-up queues it again)
                  └──► cancelled                     (ended for good)

Everything that happens is appended to the run's ``EventLog``: the loop's events (``to_dict``
form) and the service's own: ``run_status``, ``approval_requested``, ``approval_resolved``.
This module holds the state and its transitions; ``manager`` drives the fleet.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tether.agent import events as ev
from tether.api.types import Json, ToolUseBlock, Usage
from tether.fleet.local import RunHandle
from tether.fleet.spec import RunOutcome
from tether.server.errors import not_found
from tether.server.eventlog import EventLog, dumps
from tether.tools.base import ToolContext
from tether.tools.policy import Answer

Status = Literal["queued", "running", "idle", "waiting_approval", "completed", "failed", "cancelled"]
STATUSES: tuple[Status, ...] = ("queued", "running", "idle", "waiting_approval", "completed", "failed", "cancelled")
ACTIVE = frozenset({"queued", "running", "waiting_approval"})
Ending = Literal["interrupt", "cancel", "shutdown"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Totals:
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    dollars: float = 0.0

    def add(self, usage: Usage, dollars: float) -> None:
        self.turns += 1
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cache_read_tokens += usage.cache_read_input_tokens
        self.cache_write_tokens += usage.cache_creation_input_tokens
        self.dollars += dollars

    def minus(self, other: Totals) -> Totals:
        return Totals(*(max(0, a - b) for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other),
                                                     strict=True)))

    def tokens(self) -> dict[str, int]:
        return {"input": self.input_tokens, "output": self.output_tokens, "cache_read": self.cache_read_tokens,
                "cache_write": self.cache_write_tokens}


@dataclass(frozen=True)
class RunConfig:
    """What a run was started with, kept in its session's metadata so a restart can resume it."""

    tenant: str
    model: str | None = None
    tools: tuple[str, ...] = ()
    limits: dict[str, Any] = field(default_factory=dict)
    permissions: dict[str, str] = field(default_factory=dict)
    title: str | None = None
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "model": self.model, "tools": list(self.tools), "limits": self.limits,
                "permissions": self.permissions, "title": self.title, "tags": list(self.tags)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        return cls(data["tenant"], data.get("model"), tuple(data.get("tools") or ()), dict(data.get("limits") or {}),
                   dict(data.get("permissions") or {}), data.get("title"), tuple(data.get("tags") or ()))


@dataclass
class Approval:
    tool_use_id: str
    name: str
    input: Json
    requested_at: dt.datetime
    answer: asyncio.Future[Answer]

    def to_dict(self) -> dict[str, Any]:
        return {"tool_use_id": self.tool_use_id, "name": self.name, "input": self.input,
                "requested_at": self.requested_at.isoformat()}


class ServiceRun:
    def __init__(self, run_id: str, session_id: str, config: RunConfig, *, log: EventLog,
                 base: Totals | None = None, redact: Callable[[str], str] = lambda text: text,
                 task: str | None = None) -> None:
        self.id, self.session_id, self.config, self.log = run_id, session_id, config, log
        self.task = task  # what the run was started with (None: it took up a session without one)
        self.created_at = self.updated_at = utcnow()
        self.status: Status = "queued"
        self.handle: RunHandle | None = None
        self.watcher: asyncio.Task[None] | None = None  # awaits the handle; owned by the manager
        self.outcome: RunOutcome | None = None
        self.totals = base or Totals()
        self.approvals: dict[str, Approval] = {}
        self.ending: Ending | None = None
        self._redact = redact

    def __repr__(self) -> str:
        return f"<ServiceRun {self.id} {self.status}>"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    # --- what the run publishes ----------------------------------------------------------------

    def publish(self, kind: str, data: dict[str, Any]) -> int:
        self.updated_at = utcnow()
        return self.log.append(kind, self._redact(dumps(data)))

    def on_event(self, event: ev.Event) -> None:
        """One event of the execution under way (called by the fleet, in the run's task)."""
        if isinstance(event, ev.UsageReport):
            self.totals.add(event.usage, event.dollars)
        elif isinstance(event, ev.RunStarted) and self.status == "queued":
            self.set_status("running")
        self.publish(event.type, ev.to_dict(event))

    def set_status(self, status: Status) -> None:
        if status == self.status:
            return
        self.status = status
        outcome = self.outcome.to_dict() if self.outcome is not None and status not in ACTIVE else None
        self.publish("run_status", {"status": status, "outcome": outcome, "type": "run_status"})

    # --- executions ----------------------------------------------------------------------------

    def started(self, handle: RunHandle) -> None:
        """A new execution was submitted to the fleet."""
        self.handle, self.ending, self.outcome = handle, None, None
        self.set_status("queued")

    def settle(self, outcome: RunOutcome) -> None:
        """The execution ended with ``outcome``; where the run rests now depends on why."""
        self.handle, self.outcome = None, outcome
        if self.ending == "shutdown":
            return  # the run will resume in the next process; its status no longer matters here
        if self.ending == "cancel":
            status: Status = "cancelled"
        elif outcome.ok:
            status = "completed"
        elif outcome.outcome == "cancelled":
            status = "idle"
        else:
            status = "failed"
        self.set_status(status)

    # --- approvals -----------------------------------------------------------------------------

    async def ask(self, call: ToolUseBlock, context: ToolContext) -> Answer:
        """The approver of the run's ``PermissionPolicy``: wait for someone to decide."""
        approval = Approval(call.id, call.name, call.input, utcnow(), asyncio.get_running_loop().create_future())
        self.approvals[call.id] = approval
        self.publish("approval_requested", {**approval.to_dict(), "type": "approval_requested"})
        self.set_status("waiting_approval")
        try:
            return await approval.answer
        finally:
            del self.approvals[call.id]
            if self.status == "waiting_approval" and not self.approvals and self.ending is None:
                self.set_status("running")

    def decide(self, tool_use_id: str, decision: Answer) -> None:
        approval = self.approvals.get(tool_use_id)
        if approval is None or approval.answer.done():
            raise not_found(f"run {self.id} has no pending approval for tool call {tool_use_id!r}")
        approval.answer.set_result(decision)
        self.publish("approval_resolved", {"tool_use_id": tool_use_id, "decision": decision,
                                           "type": "approval_resolved"})

    # --- views ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "id": self.id, "session_id": self.session_id, "tenant": c.tenant, "status": self.status,
            "task": self._redact(self.task) if self.task is not None else None,
            "title": c.title, "model": c.model, "tools": list(c.tools), "tags": list(c.tags),
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "turns": self.totals.turns, "tokens": self.totals.tokens(), "dollars": self.totals.dollars,
            "outcome": self.outcome.to_dict() if self.outcome is not None else None,
            "pending_approvals": [a.to_dict() for a in self.approvals.values()],
            "last_event_id": self.log.last_seq,
        }
