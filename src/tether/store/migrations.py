"""Versioned schema migrations, run when a store opens.

``schema_version`` lists the steps applied. Each step is a function of a (sync) connection that
writes its own DDL: the tables as they were at that version, never the current ``schema`` module,
so that an old database upgrades through exactly the steps a new one went through. Steps are
append-only: never edit one that has shipped, add the next.

Opening is safe when several processes open the same database at once: the whole upgrade runs in
one transaction under a lock (``BEGIN IMMEDIATE`` on SQLite, ``pg_advisory_xact_lock`` on
PostgreSQL), so the second opener waits, then finds nothing left to do.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tether.store.base import StoreError
from tether.store.engine import writer
from tether.store.schema import UTCDateTime, schema_version
from tether.store.search import message_text

_LOCK_KEY = 0x7465746865720001  # "tether" + 1: PostgreSQL advisory lock for migrations


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[sa.Connection], None]


def _sid() -> sa.Column[str]:
    return sa.Column("session_id", sa.String(255), sa.ForeignKey("sessions.id", ondelete="CASCADE"),
                     primary_key=True)


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


def _v1_tables(conn: sa.Connection) -> None:
    meta = sa.MetaData()
    sa.Table(
        "sessions", meta,
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.String(255), sa.ForeignKey("sessions.id"), index=True),
        sa.Column("fork_seq", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False, index=True),
        sa.Column("turns", sa.Integer, nullable=False, server_default="0"),
        _count("input_tokens"), _count("output_tokens"), _count("cache_read_tokens"), _count("cache_write_tokens"),
        sa.Column("dollars", sa.Float, nullable=False, server_default="0"),
        sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),
    )
    sa.Table(
        "messages", meta, _sid(),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    sa.Table(
        "turns", meta, _sid(),
        sa.Column("turn", sa.Integer, primary_key=True),
        sa.Column("model", sa.Text, nullable=False),
        _count("input_tokens"), _count("output_tokens"), _count("cache_read_tokens"),
        _count("cache_write_5m_tokens"), _count("cache_write_1h_tokens"),
        sa.Column("dollars", sa.Float, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    sa.Table(
        "tool_ledger", meta, _sid(),
        sa.Column("tool_use_id", sa.String(255), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.Text),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime),
    )
    meta.create_all(conn)


def _v2_message_text(conn: sa.Connection) -> None:
    conn.execute(sa.text("ALTER TABLE messages ADD COLUMN text TEXT NOT NULL DEFAULT ''"))
    rows = conn.execute(sa.text("SELECT session_id, seq, content FROM messages")).all()
    update = sa.text("UPDATE messages SET text = :text WHERE session_id = :sid AND seq = :seq")
    params = [{"text": message_text(json.loads(content)), "sid": sid, "seq": seq} for sid, seq, content in rows]
    if params:
        conn.execute(update, params)


def _v3_service_tokens(conn: sa.Connection) -> None:
    meta = sa.MetaData()
    sa.Table(
        "service_tokens", meta,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime),
    )
    meta.create_all(conn)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "sessions, messages, turns and the tool ledger", _v1_tables),
    Migration(2, "message text, for search", _v2_message_text),
    Migration(3, "service tokens (hashed), for the HTTP service", _v3_service_tokens),
)


async def migrate(engine: AsyncEngine, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to the last of ``migrations``; returns the version it is at."""
    async with writer(engine).begin() as conn:
        return await conn.run_sync(_migrate, migrations)


def _migrate(conn: sa.Connection, migrations: Sequence[Migration]) -> int:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    schema_version.create(conn, checkfirst=True)
    current = conn.scalar(sa.select(sa.func.max(schema_version.c.version))) or 0
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise StoreError(f"the database is at schema version {current}, newer than this tether knows "
                         f"({latest}): upgrade tether")
    for step in migrations:
        if step.version > current:
            step.apply(conn)
            conn.execute(schema_version.insert().values(
                version=step.version, description=step.description, applied_at=dt.datetime.now(dt.UTC)))
    return max(current, latest)


async def schema_version_of(engine: AsyncEngine) -> int:
    """The version a database is at; 0 for an empty one."""
    async with engine.connect() as conn:
        exists = await conn.run_sync(lambda c: sa.inspect(c).has_table("schema_version"))
        if not exists:
            return 0
        return await conn.scalar(sa.select(sa.func.max(schema_version.c.version))) or 0
