"""The ``SessionStore`` protocol: what the loop and the users need from durable storage.

Messages are append-only and ordered by ``seq`` (0, 1, 2, ... within a session); content blocks are
stored in their wire form, losslessly (thinking signatures included). The tool ledger records each
tool call by its ``tool_use_id``: started, then finished with its result, so a resumed run never
executes a call twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from tether.api.types import Json
from tether.errors import TetherError

SessionStatus = Literal["running", "idle", "completed", "failed", "interrupted"]  # idle: at rest, never run (a fork)


class StoreError(TetherError):
    """The session store refused an operation."""


class StoreConflict(StoreError):
    """Another writer got there first: a ``seq``, a turn number or a session id is already taken.

    Re-read the session and decide again; retrying the same write fails the same way.
    """

    category = "conflict"


class NotFound(StoreError, LookupError):
    """No session with that id (or, for ``tool_finished``, no ledger entry with that tool_use id)."""

    category = "not_found"


@dataclass
class SessionInfo:
    id: str
    model: str
    title: str = ""
    tags: list[str] = field(default_factory=list)
    status: SessionStatus = "running"
    parent_id: str | None = None
    fork_seq: int | None = None  # the parent's messages [0, fork_seq) are this session's prefix
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    # Totals, kept by the store as turns are recorded.
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    dollars: float = 0.0
    metadata: Json = field(default_factory=dict)


@dataclass
class StoredMessage:
    seq: int
    role: str
    content: list[Json]  # wire form of each block
    created_at: dt.datetime | None = None


@dataclass
class TurnRecord:
    """The usage and cost of one model call."""

    turn: int
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    dollars: float


@dataclass
class LedgerEntry:
    tool_use_id: str
    name: str
    input: Json
    status: Literal["started", "finished"]
    result: Json | None = None  # the tool_result block, wire form, once finished
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None


@dataclass
class SessionQuery:
    text: str | None = None  # matched against titles and message text
    tag: str | None = None
    status: SessionStatus | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 50
    offset: int = 0


class SessionStore(Protocol):
    """Durable sessions. ``tether.testing.store_conformance`` checks an implementation against this.

    Every method that takes a ``session_id``, except ``get``, ``delete`` and ``prune``, raises
    ``NotFound`` for a session that does not exist. Datetimes are timezone-aware (UTC when returned).
    """

    async def create(self, session: SessionInfo) -> SessionInfo:
        """Store a new root session as given; ``created_at`` and ``updated_at`` default to now.

        Raises ``StoreConflict`` if the id is taken.
        """
        ...

    async def get(self, session_id: str) -> SessionInfo | None: ...

    async def update(self, session_id: str, **fields: Any) -> None:
        """Change title, tags, status or metadata (any other field is a ``TypeError``); bumps ``updated_at``."""
        ...

    async def list(self, query: SessionQuery) -> list[SessionInfo]:
        """Matching sessions, most recently updated first."""
        ...

    async def delete(self, session_id: str) -> None:
        """Remove a session and everything recorded in it. Its forks stay whole; an unknown id does nothing."""
        ...

    async def append(self, session_id: str, messages: Sequence[StoredMessage],
                     turn: TurnRecord | None = None) -> None:
        """Append ``messages`` (their ``seq`` must continue the session's) and record ``turn``, atomically.

        Raises ``StoreConflict`` if a ``seq`` is already taken (another writer got there first), or
        the turn number is; ``ValueError`` if the ``seq``s leave a gap. On any error nothing is kept.
        """
        ...

    async def messages(self, session_id: str) -> list[StoredMessage]:
        """The whole conversation, a fork's inherited prefix included, in order."""
        ...

    async def turns(self, session_id: str) -> list[TurnRecord]: ...

    async def tool_started(self, session_id: str, tool_use_id: str, name: str, input: Json) -> bool:
        """Record a call as started. False if the ledger already had it (do not run it again)."""
        ...

    async def tool_finished(self, session_id: str, tool_use_id: str, result: Json) -> None:
        """Record the result of a started call (``NotFound`` if it never started). The first result stays."""
        ...

    async def ledger(self, session_id: str) -> dict[str, LedgerEntry]: ...

    async def fork(self, session_id: str, at_seq: int, new_id: str) -> SessionInfo:
        """A new session whose first ``at_seq`` messages are those of ``session_id``, shared, not copied.

        It takes the parent's title, tags and model; its own totals, turns and ledger start empty.
        ``ValueError`` if ``at_seq`` is beyond the parent's messages; ``StoreConflict`` if ``new_id`` is taken.
        """
        ...

    async def prune(self, older_than: dt.datetime) -> int:
        """Delete sessions last updated before ``older_than``; returns how many."""
        ...

    async def close(self) -> None: ...
