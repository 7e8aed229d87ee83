"""``SQLStore``: the ``SessionStore`` on SQLAlchemy's async engine, for SQLite and PostgreSQL.

Beyond the protocol's docstrings:

- ``create`` stores the ``SessionInfo`` as given (totals included), filling in ``created_at`` and
  ``updated_at`` with now when unset. A session that already exists is a ``StoreConflict``. Forks are
  made with ``fork``, not ``create``.
- ``update`` changes ``title``, ``tags``, ``status`` and ``metadata`` and bumps ``updated_at``.
- ``append`` takes messages whose ``seq`` run on without a gap from the session's next one: a ``seq``
  already taken is a ``StoreConflict``, a gap is a ``ValueError``. One transaction writes the
  messages, the turn and the session's totals; anything wrong leaves nothing behind.
- ``fork`` copies title, tags, model and metadata; its status is ``running``, its totals, turns and
  ledger start empty. ``delete`` of a session with forks keeps them whole (see ``forks``); deleting
  a session that does not exist does nothing.
- ``tool_finished`` of a call that already finished keeps the first result.
- Every method but ``get``, ``list``, ``delete`` and ``prune`` raises ``NotFound`` for an unknown session.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, get_args

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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
from tether.store.forks import conversation, delete_session, message_sources, next_seq
from tether.store.migrations import migrate
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
    """A ``SessionStore`` over an ``AsyncEngine`` whose schema is up to date (see ``open_store``)."""

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.engine = engine
        self._reader = engines.reader(engine)
        self._writer = engines.writer(engine)
        self._clock = clock

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self._reader.connect() as conn:
            yield conn

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._writer.begin() as conn:
                yield conn
        except sa.exc.IntegrityError as exc:
            raise StoreConflict(f"another writer got there first: {exc.orig}") from exc

    # Sessions

    async def create(self, session: SessionInfo) -> SessionInfo:
        if session.parent_id is not None or session.fork_seq is not None:
            raise ValueError("create() makes a root session: use fork() for a fork")
        _check_status(session.status)
        _check_aware(session.created_at, session.updated_at)
        created = session.created_at or self._clock()
        info = replace(session, created_at=created, updated_at=session.updated_at or created)
        async with self._write() as conn:
            await conn.execute(sessions.insert().values(session_values(info)))
        return (await self.get(info.id)) or info

    async def get(self, session_id: str) -> SessionInfo | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(sessions).where(sessions.c.id == session_id))).first()
        return None if row is None else session_from_row(row)

    async def update(self, session_id: str, **fields: Any) -> None:
        if unknown := set(fields) - _UPDATABLE:
            raise TypeError(f"update() cannot change {sorted(unknown)}: only {sorted(_UPDATABLE)}")
        if "status" in fields:
            _check_status(fields["status"])
        values = {name: to_json(v) if name in ("tags", "metadata") else v for name, v in fields.items()}
        async with self._write() as conn:
            result = await conn.execute(
                sessions.update().where(sessions.c.id == session_id).values(**values, updated_at=self._clock())
            )
            if result.rowcount == 0:
                raise NotFound(f"no session {session_id!r}")

    async def list(self, query: SessionQuery) -> list[SessionInfo]:
        _check_aware(query.since, query.until)
        async with self._read() as conn:
            rows = (await conn.execute(list_statement(query, self.engine.dialect.name))).all()
        return [session_from_row(row) for row in rows]

    async def delete(self, session_id: str) -> None:
        async with self._write() as conn:
            await delete_session(conn, session_id)

    async def prune(self, older_than: dt.datetime) -> int:
        """One transaction per session, youngest first, so that forks go before their parents."""
        _check_aware(older_than)
        query = (sa.select(sessions.c.id).where(sessions.c.updated_at < older_than)
                 .order_by(sessions.c.created_at.desc()))
        async with self._read() as conn:
            ids = (await conn.scalars(query)).all()
        deleted = 0
        for session_id in ids:
            async with self._write() as conn:
                deleted += await delete_session(conn, session_id, updated_before=older_than)
        return deleted

    async def fork(self, session_id: str, at_seq: int, new_id: str) -> SessionInfo:
        async with self._write() as conn:
            row = (await conn.execute(
                sa.select(sessions).where(sessions.c.id == session_id).with_for_update()
            )).first()
            if row is None:
                raise NotFound(f"no session {session_id!r}")
            length = await next_seq(conn, session_id)
            if not 0 <= at_seq <= length:
                raise ValueError(f"cannot fork {session_id!r} at {at_seq}: it has {length} messages")
            now = self._clock()
            parent = session_from_row(row)
            child = SessionInfo(id=new_id, model=parent.model, title=parent.title, tags=parent.tags,
                                metadata=parent.metadata, parent_id=session_id, fork_seq=at_seq,
                                created_at=now, updated_at=now)
            await conn.execute(sessions.insert().values(session_values(child)))
        return child

    # Conversation

    async def append(self, session_id: str, messages: Sequence[StoredMessage],
                     turn: TurnRecord | None = None) -> None:
        _check_contiguous(messages)
        _check_aware(*(m.created_at for m in messages))
        now = self._clock()
        async with self._write() as conn:
            await self._touch(conn, session_id, now, turn)
            expected = await next_seq(conn, session_id)
            if messages and messages[0].seq != expected:
                first = messages[0].seq
                if first < expected:
                    raise StoreConflict(f"seq {first} of session {session_id!r} is taken: next is {expected}")
                raise ValueError(f"seq {first} leaves a gap in session {session_id!r}: next is {expected}")
            if messages:
                await conn.execute(message_rows.insert(), [_message_values(session_id, m, now) for m in messages])
            if turn is not None:
                await conn.execute(turn_rows.insert().values(session_id=session_id, created_at=now,
                                                         **turn_values(turn)))

    async def _touch(self, conn: AsyncConnection, session_id: str, now: dt.datetime,
                     turn: TurnRecord | None) -> None:
        """Bump ``updated_at`` and the totals. On PostgreSQL the row lock also queues concurrent appends."""
        values: dict[str, Any] = {"updated_at": now}
        if turn is not None:
            c = sessions.c
            values.update(
                turns=c.turns + 1, input_tokens=c.input_tokens + turn.input_tokens,
                output_tokens=c.output_tokens + turn.output_tokens,
                cache_read_tokens=c.cache_read_tokens + turn.cache_read_tokens,
                cache_write_tokens=c.cache_write_tokens + turn.cache_write_5m_tokens + turn.cache_write_1h_tokens,
                dollars=c.dollars + turn.dollars,
            )
        result = await conn.execute(sessions.update().where(sessions.c.id == session_id).values(values))
        if result.rowcount == 0:
            raise NotFound(f"no session {session_id!r}")

    async def messages(self, session_id: str) -> list[StoredMessage]:
        async with self._read() as conn:
            rows = (await conn.execute(conversation(await message_sources(conn, session_id)))).all()
        return [message_from_row(row) for row in rows]

    async def turns(self, session_id: str) -> list[TurnRecord]:
        query = sa.select(turn_rows).where(turn_rows.c.session_id == session_id).order_by(turn_rows.c.turn)
        async with self._read() as conn:
            await _require(conn, session_id)
            rows = (await conn.execute(query)).all()
        return [turn_from_row(row) for row in rows]

    # The tool ledger

    async def tool_started(self, session_id: str, tool_use_id: str, name: str, input: Json) -> bool:
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(tool_ledger).values(
            session_id=session_id, tool_use_id=tool_use_id, name=name, input=to_json(input),
            status="started", started_at=self._clock(),
        ).on_conflict_do_nothing(index_elements=["session_id", "tool_use_id"])
        async with self._write() as conn:
            await _require(conn, session_id)
            result = await conn.execute(stmt)
        return result.rowcount == 1

    async def tool_finished(self, session_id: str, tool_use_id: str, result: Json) -> None:
        entry = (tool_ledger.c.session_id == session_id) & (tool_ledger.c.tool_use_id == tool_use_id)
        async with self._write() as conn:
            updated = await conn.execute(
                tool_ledger.update().where(entry, tool_ledger.c.status == "started")
                .values(status="finished", result=to_json(result), finished_at=self._clock())
            )
            if updated.rowcount == 0 and await conn.scalar(sa.select(tool_ledger.c.status).where(entry)) is None:
                await _require(conn, session_id)
                raise NotFound(f"no tool call {tool_use_id!r} started in session {session_id!r}")

    async def ledger(self, session_id: str) -> dict[str, LedgerEntry]:
        query = (sa.select(tool_ledger).where(tool_ledger.c.session_id == session_id)
                 .order_by(tool_ledger.c.started_at, tool_ledger.c.tool_use_id))
        async with self._read() as conn:
            await _require(conn, session_id)
            rows = (await conn.execute(query)).all()
        return {row.tool_use_id: ledger_from_row(row) for row in rows}


async def _require(conn: AsyncConnection, session_id: str) -> None:
    if await conn.scalar(sa.select(sessions.c.id).where(sessions.c.id == session_id)) is None:
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
