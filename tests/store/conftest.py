"""Databases for the store tests: a SQLite file in a temporary directory, and a fresh PostgreSQL
database per test on the server at ``TETHER_TEST_POSTGRES_URL`` (default: ``postgres`` or ``root``
at 127.0.0.1:5432, database ``test``), dropped afterwards. Without a server the PostgreSQL tests skip.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

ENV = "TETHER_TEST_POSTGRES_URL"
CANDIDATES = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")


def _dsn(url: sa.URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _reachable(url: sa.URL) -> None:
    import asyncpg

    conn = await asyncpg.connect(_dsn(url), timeout=3)
    await conn.close()


@pytest.fixture(scope="session")
def postgres_server() -> sa.URL:
    """A PostgreSQL server the tests may create databases on."""
    asyncpg = pytest.importorskip("asyncpg", reason="the PostgreSQL store needs: pip install -e '.[postgres]'")
    configured = os.environ.get(ENV)
    errors = []
    for candidate in [configured] if configured else CANDIDATES:
        url = sa.make_url(candidate)
        try:
            asyncio.run(_reachable(url))
            return url
        except (OSError, asyncpg.PostgresError) as exc:  # OSError covers timeouts
            errors.append(f"{url.render_as_string()}: {exc}")
    if configured:
        pytest.fail(f"{ENV} is set but the server cannot be reached: {errors}")
    pytest.skip(f"no PostgreSQL server ({'; '.join(errors)}); point {ENV} at one, "
                f"e.g. {ENV}=postgresql://user:password@127.0.0.1:5432/postgres")


@pytest.fixture
async def postgres_url(postgres_server: sa.URL) -> AsyncIterator[str]:
    """The URL of a fresh, empty database, dropped after the test."""
    import asyncpg

    name = f"tether_test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(_dsn(postgres_server))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield postgres_server.set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'sessions.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> str:
    """Each test using this runs on both databases."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(name)
