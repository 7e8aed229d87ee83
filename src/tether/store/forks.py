"""Forks share their parent's messages instead of copying them.

A fork stores only the messages it appended itself (``seq >= fork_seq``); the rest of its
conversation is its parent's messages ``[0, fork_seq)``, resolved recursively for a fork of a fork.

Deleting a session that has forks keeps every fork whole: each child first takes over the part of
its prefix that lived in the deleted session (the deleted session's own messages below the child's
``fork_seq``, copied), then is re-parented to the deleted session's parent, so what still lives
further up stays shared.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from tether.store.base import NotFound
from tether.store.prepared import Prepared
from tether.store.schema import messages, sessions, tool_ledger, turns


def message_sources(conn: sa.Connection, session_id: str) -> list[tuple[str, int | None]]:
    """``(session id, seq bound)`` pairs: the own messages below each bound make up the conversation."""
    sources: list[tuple[str, int | None]] = []
    bound: int | None = None
    current: str | None = session_id
    while current is not None:
        row = (conn.execute(
            sa.select(sessions.c.parent_id, sessions.c.fork_seq).where(sessions.c.id == current)
        )).first()
        if row is None:
            raise NotFound(f"no session {session_id!r}")
        sources.append((current, bound))
        if row.parent_id is not None:
            bound = row.fork_seq if bound is None else min(bound, row.fork_seq)
        current = row.parent_id
    return sources


def conversation(sources: list[tuple[str, int | None]]) -> sa.Select[Any]:
    """All the messages of a conversation, in order."""
    parts = [
        messages.c.session_id == sid if bound is None
        else sa.and_(messages.c.session_id == sid, messages.c.seq < bound)
        for sid, bound in sources
    ]
    return sa.select(messages).where(sa.or_(*parts)).order_by(messages.c.seq)


_LAST = sa.select(sa.func.max(messages.c.seq)).where(messages.c.session_id == sa.bindparam("sid"))
_NEXT_SEQ = Prepared(
    sa.select(sessions.c.fork_seq, _LAST.scalar_subquery()).where(sessions.c.id == sa.bindparam("sid")))


def next_seq(conn: sa.Connection, session_id: str) -> int:
    """The ``seq`` the session's next message takes. The session must exist (and a write be under way)."""
    fork_seq, last_seq = _NEXT_SEQ.first(conn, {"sid": session_id})
    return last_seq + 1 if last_seq is not None else fork_seq or 0


def delete_session(conn: sa.Connection, session_id: str, *,
                         updated_before: dt.datetime | None = None) -> bool:
    """Delete a session and its rows, keeping its forks whole. False if there was no such session
    (or, with ``updated_before``, if it has been updated since)."""
    query = sa.select(sessions.c.parent_id, sessions.c.fork_seq).where(sessions.c.id == session_id)
    if updated_before is not None:
        query = query.where(sessions.c.updated_at < updated_before)
    row = (conn.execute(query.with_for_update())).first()
    if row is None:
        return False
    children = (conn.execute(
        sa.select(sessions.c.id, sessions.c.fork_seq).where(sessions.c.parent_id == session_id)
    )).all()
    for child_id, child_seq in children:
        _detach(conn, session_id, row.parent_id, row.fork_seq, child_id, child_seq)
    for table in (messages, turns, tool_ledger):
        conn.execute(table.delete().where(table.c.session_id == session_id))
    conn.execute(sessions.delete().where(sessions.c.id == session_id))
    return True


def _detach(conn: sa.Connection, session_id: str, grandparent: str | None, session_fork_seq: int | None,
                  child_id: str, child_seq: int) -> None:
    copied = sa.select(
        sa.literal(child_id, sa.String), messages.c.seq, messages.c.role, messages.c.content,
        messages.c.text, messages.c.created_at,
    ).where(messages.c.session_id == session_id, messages.c.seq < child_seq)
    columns = ["session_id", "seq", "role", "content", "text", "created_at"]
    conn.execute(messages.insert().from_select(columns, copied))
    fork_seq = None if grandparent is None else min(child_seq, session_fork_seq or 0)
    conn.execute(
        sessions.update().where(sessions.c.id == child_id).values(parent_id=grandparent, fork_seq=fork_seq)
    )
