"""``GET /v1/usage``: tokens and dollars summed from the store's turn records, by model, day or tenant.

Every model call a session records is a turn (``tether.store``), so this counts runs started by
the service and by the CLI alike. A day is a UTC date. The tenant is the one of the token that
started the session's service run; sessions made elsewhere have none (``null``). SQL stores
only (SQLite and PostgreSQL): the query reads the tables directly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from tether.server.errors import ServiceError
from tether.store.base import SessionStore
from tether.store.schema import sessions, turns

By = Literal["model", "day", "tenant"]
SUMS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "dollars")


def _tenant(dialect: str) -> sa.ColumnElement[Any]:
    if dialect == "postgresql":
        return sa.func.jsonb_extract_path_text(sa.cast(sessions.c.metadata, JSONB), "service", "config", "tenant")
    return sa.func.json_extract(sessions.c.metadata, "$.service.config.tenant")


def _day(dialect: str) -> sa.ColumnElement[Any]:
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", turns.c.created_at), "YYYY-MM-DD")
    return sa.func.strftime("%Y-%m-%d", turns.c.created_at)


async def usage(store: SessionStore, *, by: By, tenant: str | None = None,
                since: dt.datetime | None = None) -> list[dict[str, Any]]:
    """One row per ``by`` key: turns, the four token counts and dollars. ``tenant``: only its sessions;
    ``since``: only turns recorded from then on."""
    engine = getattr(store, "engine", None)
    if engine is None:
        raise ServiceError("validation_error", "usage needs a SQL session store", status=501)
    dialect = engine.dialect.name
    key = {"model": turns.c.model, "day": _day(dialect), "tenant": _tenant(dialect)}[by].label("key")
    write = (turns.c.cache_write_5m_tokens + turns.c.cache_write_1h_tokens).label("cache_write_tokens")
    columns = [sa.func.sum(turns.c.input_tokens), sa.func.sum(turns.c.output_tokens),
               sa.func.sum(turns.c.cache_read_tokens), sa.func.sum(write), sa.func.sum(turns.c.dollars)]
    stmt = (sa.select(key, sa.func.count(), *columns)
            .select_from(turns.join(sessions, turns.c.session_id == sessions.c.id))
            .group_by(key).order_by(key))
    if tenant is not None:
        stmt = stmt.where(_tenant(dialect) == tenant)
    if since is not None:
        stmt = stmt.where(turns.c.created_at >= since)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [{"key": row[0], "turns": int(row[1]), **{name: (float(v or 0) if name == "dollars" else int(v or 0))
                                                     for name, v in zip(SUMS, row[2:], strict=True)}}
            for row in rows]


async def dollars_by_tenant(store: SessionStore, since: dt.datetime) -> dict[str, float]:
    """The dollars of each tenant's turns recorded from ``since`` on (for ``budgets``)."""
    return {row["key"]: row["dollars"] for row in await usage(store, by="tenant", since=since) if row["key"]}
