"""The conformance suite against the SQL store, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from tether.store import open_store
from tether.testing.store_conformance import StoreConformance


class TestSQLite(StoreConformance):
    @pytest.fixture
    def make_store(self, sqlite_url: str):
        return lambda: open_store(sqlite_url)


class TestPostgreSQL(StoreConformance):
    @pytest.fixture
    def make_store(self, postgres_url: str):
        return lambda: open_store(postgres_url)
