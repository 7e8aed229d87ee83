"""The tables, as SQLAlchemy Core objects, in the shape the latest migration leaves them.

JSON is stored as compact text (``tether.api.types.dumps``), never as a JSON column, so that what
was appended comes back as it was, on SQLite and PostgreSQL alike. Datetimes are UTC: stored as
``TIMESTAMP WITH TIME ZONE`` on PostgreSQL and as naive UTC on SQLite, always returned aware.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """An aware datetime in, an aware UTC datetime out. Naive datetimes are refused."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: the store takes timezone-aware datetimes")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _tokens(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


sessions = sa.Table(
    "sessions", metadata,
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
    _tokens("input_tokens"),
    _tokens("output_tokens"),
    _tokens("cache_read_tokens"),
    _tokens("cache_write_tokens"),
    sa.Column("dollars", sa.Float, nullable=False, server_default="0"),
    sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),
)

messages = sa.Table(
    "messages", metadata,
    sa.Column("session_id", sa.String(255), sa.ForeignKey("sessions.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False, server_default=""),  # added by migration 2, for search
    sa.Column("created_at", UTCDateTime, nullable=False),
)

turns = sa.Table(
    "turns", metadata,
    sa.Column("session_id", sa.String(255), sa.ForeignKey("sessions.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("turn", sa.Integer, primary_key=True),
    sa.Column("model", sa.Text, nullable=False),
    _tokens("input_tokens"),
    _tokens("output_tokens"),
    _tokens("cache_read_tokens"),
    _tokens("cache_write_5m_tokens"),
    _tokens("cache_write_1h_tokens"),
    sa.Column("dollars", sa.Float, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

tool_ledger = sa.Table(
    "tool_ledger", metadata,
    sa.Column("session_id", sa.String(255), sa.ForeignKey("sessions.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("tool_use_id", sa.String(255), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("input", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("result", sa.Text),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
)

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)
