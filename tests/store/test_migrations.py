"""Schema migrations: a new database, an old one upgrading, reopening, and several openers at once."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys

import pytest
import sqlalchemy as sa

from tether.store import MIGRATIONS, Migration, SessionQuery, StoreError, migrate, open_store
from tether.store.engine import make_engine, resolve_url
from tether.store.migrations import schema_version_of
from tether.store.schema import UTCDateTime

LATEST = MIGRATIONS[-1].version


async def _versions(url: str) -> list[int]:
    engine = make_engine(resolve_url(url))
    try:
        async with engine.connect() as conn:
            return list(await conn.scalars(sa.text("SELECT version FROM schema_version ORDER BY version")))
    finally:
        await engine.dispose()


async def test_a_new_database_gets_every_step(database_url: str) -> None:
    store = await open_store(database_url)
    assert await schema_version_of(store.engine) == LATEST
    await store.close()
    assert await _versions(database_url) == [m.version for m in MIGRATIONS]


async def test_reopening_applies_nothing_twice(database_url: str) -> None:
    for _ in range(3):
        await (await open_store(database_url)).close()
    assert await _versions(database_url) == [m.version for m in MIGRATIONS]


async def test_a_database_one_version_behind_upgrades_and_keeps_its_rows(database_url: str) -> None:
    engine = make_engine(resolve_url(database_url))
    assert await migrate(engine, MIGRATIONS[:1]) == 1  # the rows below have the v1 shape (no message text)
    content = [{"type": "text", "text": "The Needle in v1"}]
    now = sa.bindparam("now", dt.datetime(2024, 1, 1, tzinfo=dt.UTC), type_=UTCDateTime)
    async with engine.begin() as conn:
        await conn.execute(sa.text(
            "INSERT INTO sessions (id, model, status, created_at, updated_at) "
            "VALUES ('old', 'claude-test', 'completed', :now, :now)").bindparams(now))
        await conn.execute(sa.text(
            "INSERT INTO messages (session_id, seq, role, content, created_at) "
            "VALUES ('old', 0, 'user', :content, :now)").bindparams(now), {"content": json.dumps(content)})
    await engine.dispose()

    store = await open_store(database_url)
    try:
        assert await schema_version_of(store.engine) == LATEST
        assert [m.content for m in await store.messages("old")] == [content]
        assert [s.id for s in await store.list(SessionQuery(text="needle"))] == ["old"]  # text backfilled
    finally:
        await store.close()


async def test_a_database_newer_than_the_code_is_refused(database_url: str) -> None:
    await (await open_store(database_url)).close()
    engine = make_engine(resolve_url(database_url))
    try:
        future = Migration(LATEST + 1, "from the future", lambda conn: None)
        await migrate(engine, [*MIGRATIONS, future])
        with pytest.raises(StoreError, match="newer than this tether"):
            await migrate(engine)
    finally:
        await engine.dispose()


async def test_many_openers_at_once_migrate_once(database_url: str) -> None:
    stores = await asyncio.gather(*(open_store(database_url) for _ in range(6)))
    await asyncio.gather(*(s.close() for s in stores))
    assert await _versions(database_url) == [m.version for m in MIGRATIONS]


async def test_several_processes_opening_a_new_file_at_once(sqlite_url: str) -> None:
    script = "import asyncio, sys\nfrom tether.store import open_store\n" \
             "async def main():\n    await (await open_store(sys.argv[1])).close()\nasyncio.run(main())\n"
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", script, sqlite_url) for _ in range(3)]
    assert [await p.wait() for p in procs] == [0, 0, 0]
    assert await _versions(sqlite_url) == [m.version for m in MIGRATIONS]
