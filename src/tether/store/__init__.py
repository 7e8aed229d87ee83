"""Durable sessions: the ``SessionStore`` protocol and its SQL implementation (SQLite, PostgreSQL).

``await open_store()`` opens ``sessions.db`` in the user's data directory; ``open_store(url)`` opens a
file path, ``sqlite:///…`` or ``postgresql://…`` (the ``postgres`` extra). The conformance suite
any store must pass is ``tether.testing.store_conformance``.
"""

from tether.store.base import (
    LedgerEntry,
    NotFound,
    SessionInfo,
    SessionQuery,
    SessionStatus,
    SessionStore,
    StoreConflict,
    StoredMessage,
    StoreError,
    TurnRecord,
)
from tether.store.migrations import MIGRATIONS, Migration, migrate
from tether.store.sql import SQLStore, open_store

__all__ = [
    "MIGRATIONS",
    "LedgerEntry",
    "Migration",
    "NotFound",
    "SQLStore",
    "SessionInfo",
    "SessionQuery",
    "SessionStatus",
    "SessionStore",
    "StoreConflict",
    "StoreError",
    "StoredMessage",
    "TurnRecord",
    "migrate",
    "open_store",
]
