"""``SQLStore``: the ``SessionStore`` on SQLAlchemy's async engine, for SQLite and PostgreSQL.

Beyond the protocol's docstrings:

- ``create`` stores the ``SessionInfo`` as given (totals included), filling in ``created_at`` and
  ``updated_at`` with now when unset. A session that already exists is a ``StoreConflict``. Forks are
  made with ``fork``, not ``create``.
- ``update`` changes ``title``, ``tags``, ``status`` and ``metadata`` and bumps ``updated_at``.
- ``append`` takes messages whose ``seq`` run on without a gap from the session's next one: a ``seq``
  already taken is a ``StoreConflict``, a gap is a ``ValueError``. One transaction writes the
  messages, the turn and the session's totals; anything wrong leaves nothing behind.
- ``fork`` copies title, tags, model and metadata; its status is ``idle`` (nothing runs it yet), its totals, turns and
  ledger start empty. ``delete`` of a session with forks keeps them whole (see ``forks``); deleting
  a session that does not exist does nothing.
- ``tool_finished`` of a call that already finished keeps the first result.
- Every method but ``get``, ``list``, ``delete`` and ``prune`` raises ``NotFound`` for an unknown session.

The statements of the writes (those of every turn, ``create`` and ``update``) are built once, with
bound parameters, and run as ``Prepared`` statements on the driver's cursor
(``tether.store.prepared``); reads, deletes and the rest of ``fork`` go through ``conn.execute``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, get_args

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from tether.api.types import Json
from tether.store import engine as engines
from tether.store.base import (
    LedgerEntry,
    NotFound,
    SessionInfo,
    SessionQuery,
    SessionStatus,
    StoreConflict,
    StoredMessage,
    TurnRecord,
)
from tether.store.database import database_for
from tether.store.forks import conversation, delete_session, message_sources, next_seq
from tether.store.migrations import migrate
from tether.store.prepared import Prepared
from tether.store.rows import (
    ledger_from_row,
    message_from_row,
    session_from_row,
    session_values,
    to_json,
    turn_from_row,
    turn_values,
)
from tether.store.schema import messages as message_rows
from tether.store.schema import sessions, tool_ledger
from tether.store.schema import turns as turn_rows
from tether.store.search import list_statement, message_text

_UPDATABLE = frozenset({"title", "tags", "status", "metadata"})


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def open_store(url: str | None = None, *, clock: Callable[[], dt.datetime] = utcnow) -> SQLStore:
    """Open (creating it if need be) the store at ``url`` and bring its schema up to date.

    ``url``: ``None`` for ``sessions.db`` in the user's data directory, a file path,
    ``sqlite:///path`` or ``postgresql://user@host/db`` (the ``postgres`` extra).
    """
    resolved = engines.resolve_url(url)
    if (path := engines.sqlite_file(resolved)) is not None:
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    engine = engines.make_engine(resolved)
    try:
        await migrate(engine)
    except BaseException:
        await engine.dispose()
        raise
    return SQLStore(engine, clock=clock)


class SQLStore:
    """A ``SessionStore`` over an ``AsyncEngine`` whose schema is up to date (see ``open_store``).

    Each method checks its arguments, then runs one plain function of a connection in one
    transaction (see ``tether.store.database``: on SQLite, in a thread, writes group-committed).
    """

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.engine = engine
        self._db = database_for(engine)
        self._clock = clock
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._claim = Prepared(insert(tool_ledger).values(_bound(*_CLAIMED))
                               .on_conflict_do_nothing(index_elements=["session_id", "tool_use_id"]))

    async def close(self) -> None:
        await self._db.close()
        await self.engine.dispose()

    # Sessions

    async def create(self, session: SessionInfo) -> SessionInfo:
        if session.parent_id is not None or session.fork_seq is not None:
            raise ValueError("create() makes a root session: use fork() for a fork")
        _check_status(session.status)
        _check_aware(session.created_at, session.updated_at)
        created = session.created_at or self._clock()
        info = replace(session, created_at=created, updated_at=session.updated_at or created)
        await self._db.write(_insert_session, info)
        return info

    async def get(self, session_id: str) -> SessionInfo | None:
        return await self._db.read(_get, session_id)

    async def update(self, session_id: str, **fields: Any) -> None:
        if unknown := set(fields) - _UPDATABLE:
            raise TypeError(f"update() cannot change {sorted(unknown)}: only {sorted(_UPDATABLE)}")
        if "status" in fields:
            _check_status(fields["status"])
        values = {name: to_json(v) if name in ("tags", "metadata") else v for name, v in fields.items()}
        await self._db.write(_update_session, session_id, _update_statement(tuple(sorted(fields))),
                             {**values, "sid": session_id, "now": self._clock()})

    async def list(self, query: SessionQuery) -> list[SessionInfo]:
        _check_aware(query.since, query.until)
        statement = list_statement(query, self.engine.dialect.name)
        return await self._db.read(lambda conn: [session_from_row(row) for row in conn.execute(statement)])

    async def delete(self, session_id: str) -> None:
        await self._db.write(delete_session, session_id)

    async def prune(self, older_than: dt.datetime) -> int:
        """One transaction per session, youngest first, so that forks go before their parents."""
        _check_aware(older_than)
        query = (sa.select(sessions.c.id).where(sessions.c.updated_at < older_than)
                 .order_by(sessions.c.created_at.desc()))
        ids = await self._db.read(lambda conn: conn.scalars(query).all())
        deleted = 0
        for session_id in ids:
            deleted += await self._db.write(partial(delete_session, updated_before=older_than), session_id)
        return deleted

    async def fork(self, session_id: str, at_seq: int, new_id: str) -> SessionInfo:
        return await self._db.write(_fork, session_id, at_seq, new_id, self._clock())

    # Conversation

    async def append(self, session_id: str, messages: Sequence[StoredMessage],
                     turn: TurnRecord | None = None) -> None:
        _check_contiguous(messages)
        _check_aware(*(m.created_at for m in messages))
        await self._db.write(_append, session_id, messages, turn, self._clock())

    async def messages(self, session_id: str) -> list[StoredMessage]:
        return await self._db.read(_messages, session_id)

    async def turns(self, session_id: str) -> list[TurnRecord]:
        return await self._db.read(_turns, session_id)

    # The tool ledger

    async def tool_started(self, session_id: str, tool_use_id: str, name: str, input: Json) -> bool:
        values = {"session_id": session_id, "tool_use_id": tool_use_id, "name": name, "input": to_json(input),
                  "status": "started", "started_at": self._clock()}
        return await self._db.write(_tool_started, session_id, self._claim, values)

    async def tool_finished(self, session_id: str, tool_use_id: str, result: Json) -> None:
        await self._db.write(_tool_finished, session_id, tool_use_id, to_json(result), self._clock())

    async def ledger(self, session_id: str) -> dict[str, LedgerEntry]:
        return await self._db.read(_ledger, session_id)


# The transactions, each a plain function of a connection, and the statements built once.


def _bound(*names: str) -> dict[str, sa.BindParameter[Any]]:
    return {name: sa.bindparam(name) for name in names}


_SID = sa.bindparam("sid")
_GET = sa.select(sessions).where(sessions.c.id == _SID)
_EXISTS = sa.select(sessions.c.id).where(sessions.c.id == _SID)
_BY_ID = sessions.update().where(sessions.c.id == _SID)
_TOUCH = Prepared(_BY_ID.values(updated_at=sa.bindparam("now")))
_TOUCH_TURN = Prepared(_BY_ID.values(
    updated_at=sa.bindparam("now"), turns=sessions.c.turns + 1,
    **{name: getattr(sessions.c, name) + sa.bindparam(name) for name in
       ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "dollars")}))
_INSERT_SESSION = Prepared(sessions.insert())  # the inserts name every column: their values give them all
_INSERT_MESSAGES = Prepared(message_rows.insert())
_INSERT_TURN = Prepared(turn_rows.insert())
_CLAIMED = ("session_id", "tool_use_id", "name", "input", "status", "started_at")
_ENTRY = (tool_ledger.c.session_id == _SID) & (tool_ledger.c.tool_use_id == sa.bindparam("tid"))
_FINISH = Prepared(tool_ledger.update().where(_ENTRY, tool_ledger.c.status == "started")
                   .values(status="finished", result=sa.bindparam("result"), finished_at=sa.bindparam("now")))
_LEDGER_STATUS = sa.select(tool_ledger.c.status).where(_ENTRY)


@functools.cache
def _update_statement(names: tuple[str, ...]) -> Prepared:
    """``update``'s statement for the fields it is given (at most 16 sets of them)."""
    return Prepared(_BY_ID.values({**_bound(*names), "updated_at": sa.bindparam("now")}))


def _insert_session(conn: sa.Connection, info: SessionInfo) -> None:
    _INSERT_SESSION.execute(conn, session_values(info))


def _get(conn: sa.Connection, session_id: str) -> SessionInfo | None:
    row = conn.execute(_GET, {"sid": session_id}).first()
    return None if row is None else session_from_row(row)


def _update_session(conn: sa.Connection, session_id: str, statement: Prepared, params: dict[str, Any]) -> None:
    if statement.execute(conn, params) == 0:
        raise NotFound(f"no session {session_id!r}")


def _fork(conn: sa.Connection, session_id: str, at_seq: int, new_id: str, now: dt.datetime) -> SessionInfo:
    row = conn.execute(sa.select(sessions).where(sessions.c.id == session_id).with_for_update()).first()
    if row is None:
        raise NotFound(f"no session {session_id!r}")
    length = next_seq(conn, session_id)
    if not 0 <= at_seq <= length:
        raise ValueError(f"cannot fork {session_id!r} at {at_seq}: it has {length} messages")
    parent = session_from_row(row)
    child = SessionInfo(id=new_id, model=parent.model, title=parent.title, tags=parent.tags, status="idle",
                        metadata=parent.metadata, parent_id=session_id, fork_seq=at_seq,
                        created_at=now, updated_at=now)
    _insert_session(conn, child)
    return child


def _append(conn: sa.Connection, session_id: str, messages: Sequence[StoredMessage], turn: TurnRecord | None,
            now: dt.datetime) -> None:
    _touch(conn, session_id, now, turn)
    expected = next_seq(conn, session_id)
    if messages and messages[0].seq != expected:
        first = messages[0].seq
        if first < expected:
            raise StoreConflict(f"seq {first} of session {session_id!r} is taken: next is {expected}")
        raise ValueError(f"seq {first} leaves a gap in session {session_id!r}: next is {expected}")
    if messages:
        _INSERT_MESSAGES.executemany(conn, [_message_values(session_id, m, now) for m in messages])
    if turn is not None:
        _INSERT_TURN.execute(conn, {"session_id": session_id, "created_at": now, **turn_values(turn)})


def _touch(conn: sa.Connection, session_id: str, now: dt.datetime, turn: TurnRecord | None) -> None:
    """Bump ``updated_at`` and the totals. On PostgreSQL the row lock also queues concurrent appends."""
    if turn is None:
        _update_session(conn, session_id, _TOUCH, {"sid": session_id, "now": now})
        return
    _update_session(conn, session_id, _TOUCH_TURN, {
        "sid": session_id, "now": now, "input_tokens": turn.input_tokens, "output_tokens": turn.output_tokens,
        "cache_read_tokens": turn.cache_read_tokens, "dollars": turn.dollars,
        "cache_write_tokens": turn.cache_write_5m_tokens + turn.cache_write_1h_tokens})


def _messages(conn: sa.Connection, session_id: str) -> list[StoredMessage]:
    return [message_from_row(row) for row in conn.execute(conversation(message_sources(conn, session_id)))]


def _turns(conn: sa.Connection, session_id: str) -> list[TurnRecord]:
    _require(conn, session_id)
    query = sa.select(turn_rows).where(turn_rows.c.session_id == session_id).order_by(turn_rows.c.turn)
    return [turn_from_row(row) for row in conn.execute(query)]


def _tool_started(conn: sa.Connection, session_id: str, claim: Prepared, values: dict[str, Any]) -> bool:
    try:
        return claim.execute(conn, values) == 1
    except sa.exc.IntegrityError:  # a taken key does nothing: what is left to break is the session's foreign key
        raise NotFound(f"no session {session_id!r}") from None


def _tool_finished(conn: sa.Connection, session_id: str, tool_use_id: str, result: str, now: dt.datetime) -> None:
    entry = {"sid": session_id, "tid": tool_use_id}
    updated = _FINISH.execute(conn, {**entry, "result": result, "now": now})
    if updated == 0 and conn.scalar(_LEDGER_STATUS, entry) is None:
        _require(conn, session_id)
        raise NotFound(f"no tool call {tool_use_id!r} started in session {session_id!r}")


def _ledger(conn: sa.Connection, session_id: str) -> dict[str, LedgerEntry]:
    _require(conn, session_id)
    query = (sa.select(tool_ledger).where(tool_ledger.c.session_id == session_id)
             .order_by(tool_ledger.c.started_at, tool_ledger.c.tool_use_id))
    return {row.tool_use_id: ledger_from_row(row) for row in conn.execute(query)}


def _require(conn: sa.Connection, session_id: str) -> None:
    if conn.scalar(_EXISTS, {"sid": session_id}) is None:
        raise NotFound(f"no session {session_id!r}")


def _check_status(status: str) -> None:
    if status not in get_args(SessionStatus):
        raise ValueError(f"unknown session status {status!r}: one of {get_args(SessionStatus)}")


def _check_aware(*moments: dt.datetime | None) -> None:
    for moment in moments:
        if moment is not None and moment.tzinfo is None:
            raise ValueError(f"naive datetime {moment.isoformat()}: the store takes timezone-aware datetimes")


def _check_contiguous(batch: Sequence[StoredMessage]) -> None:
    for before, after in itertools.pairwise(batch):
        if after.seq != before.seq + 1:
            raise ValueError(f"messages to append must have consecutive seqs: {before.seq} then {after.seq}")


def _message_values(session_id: str, message: StoredMessage, now: dt.datetime) -> dict[str, Any]:
    return {
        "session_id": session_id, "seq": message.seq, "role": message.role,
        "content": to_json(message.content), "text": message_text(message.content),
        "created_at": message.created_at or now,
    }
