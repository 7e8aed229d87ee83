"""What is particular to the SQL store: where it lives, how SQLite is set up, what rows it writes."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading

import pytest
import sqlalchemy as sa

from tether.api.types import dumps
from tether.errors import ConfigError
from tether.store import (
    SessionInfo,
    SessionQuery,
    StoreConflict,
    StoredMessage,
    TurnRecord,
    open_store,
    schema,
)
from tether.store.engine import resolve_url
from tether.testing.store_conformance import TRICKY_CONTENT, text_message


async def test_the_default_store_is_a_file_in_the_users_data_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    store = await open_store()
    await store.close()
    assert (tmp_path / "data" / "tether" / "sessions.db").is_file()


async def test_a_bare_path_is_a_sqlite_file_and_its_directories_are_made(tmp_path) -> None:
    path = tmp_path / "a" / "b" / "s.db"
    await (await open_store(str(path))).close()
    assert path.is_file()


def test_urls_get_their_async_drivers() -> None:
    assert resolve_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert resolve_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    assert resolve_url("sqlite:////tmp/x.db").drivername == "sqlite+aiosqlite"
    for bad in ("sqlite://", "sqlite:///:memory:", "mysql://u@h/db"):
        with pytest.raises(ConfigError):
            resolve_url(bad)


async def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(sqlite_url: str) -> None:
    store = await open_store(sqlite_url)
    try:
        async with store.engine.connect() as conn:
            pragmas = [await conn.scalar(sa.text(f"PRAGMA {name}"))
                       for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")]
    finally:
        await store.close()
    assert pragmas == ["wal", 1, 1, 30_000]


async def test_a_writer_waits_for_another_processs_write_lock(tmp_path) -> None:
    path = tmp_path / "s.db"
    store = await open_store(str(path))
    await store.create(SessionInfo(id="s", model="m"))
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(5)
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    await asyncio.to_thread(locked.wait, 5)
    append = asyncio.create_task(store.append("s", [text_message(0)]))
    await asyncio.sleep(0.3)
    assert not append.done()
    release.set()
    await append
    await asyncio.to_thread(holder.join)
    assert len(await store.messages("s")) == 1
    await store.close()


async def test_content_is_stored_as_the_compact_json_text(database_url: str) -> None:
    store = await open_store(database_url)
    try:
        content = [TRICKY_CONTENT[0], {"type": "text", "text": "日本語 \"quoted\""}]
        await store.create(SessionInfo(id="s", model="m"))
        await store.append("s", [StoredMessage(0, "assistant", content)])
        async with store.engine.connect() as conn:
            stored = await conn.scalar(sa.text("SELECT content FROM messages WHERE session_id = 's'"))
        assert stored == dumps(content)
    finally:
        await store.close()


async def test_rows_are_stored_as_in_databases_written_before(tmp_path) -> None:
    """The rows each write leaves, as SQLite holds them: naive UTC datetime text, compact JSON."""
    now = dt.datetime(2024, 5, 6, 9, 8, 7, 654321, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    at = "2024-05-06 07:08:07.654321"
    store = await open_store(str(tmp_path / "s.db"), clock=lambda: now)
    try:
        await store.create(SessionInfo("s", "m", "t", ["a"], metadata={"k": "☃"}))
        await store.append("s", [StoredMessage(0, "assistant", [{"type": "text", "text": "hi"}])],
                           TurnRecord(0, "m", 10, 5, 2, 1, 1, 0.5))
        await store.tool_started("s", "toolu_1", "bash", {"command": "ls"})
        await store.tool_finished("s", "toolu_1", {"ok": True})
        await store.update("s", status="completed", tags=["b"])
        await store.fork("s", 1, "f")
    finally:
        await store.close()
    raw = sqlite3.connect(tmp_path / "s.db")
    rows = {table.name: raw.execute(f"SELECT {', '.join(table.c.keys())} FROM {table.name} ORDER BY 1").fetchall()
            for table in (schema.sessions, schema.messages, schema.turns, schema.tool_ledger)}
    raw.close()
    assert rows == {
        "sessions": [("f", "t", '["b"]', "m", "idle", "s", 1, at, at, 0, 0, 0, 0, 0, 0.0, '{"k":"☃"}'),
                     ("s", "t", '["b"]', "m", "completed", None, None, at, at, 1, 10, 5, 2, 2, 0.5, '{"k":"☃"}')],
        "messages": [("s", 0, "assistant", '[{"type":"text","text":"hi"}]', "hi", at)],
        "turns": [("s", 0, "m", 10, 5, 2, 1, 1, 0.5, at)],
        "tool_ledger": [("s", "toolu_1", "bash", '{"command":"ls"}', "finished", '{"ok":true}', at, at)],
    }


async def test_deleting_a_parent_reparents_its_forks_to_the_grandparent(database_url: str) -> None:
    store = await open_store(database_url)
    try:
        await store.create(SessionInfo(id="root", model="m"))
        await store.append("root", [text_message(i) for i in range(3)])
        await store.fork("root", 2, "middle")
        await store.append("middle", [text_message(2), text_message(3)])
        await store.fork("middle", 1, "below")
        await store.fork("middle", 4, "above")
        await store.delete("middle")
        below, above = await store.get("below"), await store.get("above")
        assert below is not None and above is not None
        assert (below.parent_id, below.fork_seq) == ("root", 1)
        assert (above.parent_id, above.fork_seq) == ("root", 2)  # middle's own messages 2 and 3 were copied
        await store.delete("root")
        above = await store.get("above")
        assert above is not None and (above.parent_id, above.fork_seq) == (None, None)
        assert [m.seq for m in await store.messages("above")] == [0, 1, 2, 3]
    finally:
        await store.close()


async def test_naive_datetimes_and_bad_fields_are_refused(sqlite_url: str) -> None:
    store = await open_store(sqlite_url)
    naive = dt.datetime(2024, 1, 1)
    try:
        with pytest.raises(ValueError, match="naive"):
            await store.list(SessionQuery(since=naive))
        with pytest.raises(ValueError, match="naive"):
            await store.prune(naive)
        with pytest.raises(ValueError, match="naive"):
            await store.create(SessionInfo(id="s", model="m", created_at=naive))
        with pytest.raises(ValueError, match="fork"):
            await store.create(SessionInfo(id="s", model="m", parent_id="p", fork_seq=0))
        await store.create(SessionInfo(id="s", model="m"))
        with pytest.raises(ValueError, match="status"):
            await store.update("s", status="paused")
    finally:
        await store.close()


async def test_a_failing_write_is_undone_alone_and_the_writes_committed_with_it_stay(sqlite_url: str) -> None:
    store = await open_store(sqlite_url)
    try:
        ids = [f"s{i}" for i in range(8)]
        for sid in ids:
            await store.create(SessionInfo(sid, "claude-sonnet-4-5", "t"))
        turn = TurnRecord(0, "claude-sonnet-4-5", 10, 5, 0, 0, 0, 0.001)
        # Written at once, these go into one group commit: the taken seq, the gap and the repeated
        # turn (which fails after writing its message) fail, the rest land.
        outcomes = await asyncio.gather(
            *(store.append(sid, [text_message(0, sid)], turn) for sid in ids),
            store.append("s3", [text_message(0, "taken")]),
            store.append("s5", [text_message(7, "gap")]),
            store.append("s6", [text_message(1, "turn 0 again")], turn),
            store.tool_started("s7", "toolu_1", "bash", {}),
            return_exceptions=True,
        )
        assert outcomes[:8] == [None] * 8
        assert [type(o) for o in outcomes[8:11]] == [StoreConflict, ValueError, StoreConflict]
        assert outcomes[11] is True
        for sid in ids:
            assert [m.content for m in await store.messages(sid)] == [text_message(0, sid).content]
            assert len(await store.turns(sid)) == 1
        assert list(await store.ledger("s7")) == ["toolu_1"]
    finally:
        await store.close()
