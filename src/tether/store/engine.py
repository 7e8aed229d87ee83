"""Which database, and an engine set up for it.

SQLite (the default, a file in the user's data directory) runs in WAL mode with
``synchronous=NORMAL``, foreign keys on and a busy timeout. SQLAlchemy emits the ``BEGIN`` itself:
``BEGIN IMMEDIATE`` for a write transaction, so that two writers queue on the file lock instead of
failing when one upgrades from reading to writing, and a plain ``BEGIN`` for reads, which see one
snapshot. PostgreSQL reads run at ``REPEATABLE READ`` for the same reason.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import platformdirs
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tether.errors import ConfigError

WRITE = "tether_write"  # execution option marking a write transaction
BUSY_TIMEOUT_MS = 30_000

_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}
_SUPPORTED = {"sqlite+aiosqlite", "postgresql+asyncpg"}


def default_path() -> Path:
    return platformdirs.user_data_path("tether") / "sessions.db"


def resolve_url(url: str | None) -> sa.URL:
    """A database URL with its async driver. ``None`` is the default file; a bare path is a SQLite file."""
    if url is None:
        url = str(default_path())
    if "://" not in url:
        return sa.URL.create("sqlite+aiosqlite", database=str(Path(url).expanduser()))
    parsed = sa.make_url(url)
    parsed = parsed.set(drivername=_DRIVERS.get(parsed.drivername, parsed.drivername))
    if parsed.drivername not in _SUPPORTED:
        raise ConfigError(f"unsupported store URL {parsed.drivername}://…: use sqlite:// or postgresql://")
    if parsed.drivername.startswith("sqlite") and parsed.database in (None, "", ":memory:"):
        raise ConfigError("an in-memory SQLite store is not supported: give a file path")
    return parsed


def sqlite_file(url: sa.URL) -> Path | None:
    return Path(url.database).expanduser() if url.drivername.startswith("sqlite") and url.database else None


def make_engine(url: sa.URL) -> AsyncEngine:
    if url.drivername.startswith("sqlite"):
        engine = create_async_engine(url)
        _set_up_sqlite(engine.sync_engine)
        return engine
    try:
        return create_async_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "the PostgreSQL store needs asyncpg: pip install 'tether[postgres]'"
        ) from exc


def sync_twin(engine: AsyncEngine) -> sa.Engine:
    """A synchronous engine on the same SQLite file (the plain ``sqlite3`` driver), for threads."""
    url = engine.url.set(drivername="sqlite+pysqlite")
    twin = sa.create_engine(url, connect_args={"check_same_thread": False})
    _set_up_sqlite(twin)
    return twin


def reader(engine: AsyncEngine) -> AsyncEngine:
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="REPEATABLE READ")
    return engine


def writer(engine: AsyncEngine) -> AsyncEngine:
    return engine.execution_options(**{WRITE: True})


def _set_up_sqlite(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN, below
        cursor = dbapi_connection.cursor()
        for pragma in (f"busy_timeout = {BUSY_TIMEOUT_MS}", "journal_mode = WAL",
                       "synchronous = NORMAL", "foreign_keys = ON"):
            _pragma(cursor, pragma)
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _pragma(cursor: Any, pragma: str) -> None:
    """``PRAGMA pragma``. Switching a new file to WAL while other connections open it can fail at
    once with "database is locked" (SQLite skips the busy handler there): try again, within the
    busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute(f"PRAGMA {pragma}")
            return
        except Exception as exc:  # the driver's OperationalError (aiosqlite's and sqlite3's differ)
            if "database is locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
