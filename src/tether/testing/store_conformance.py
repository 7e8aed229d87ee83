"""The conformance suite every ``SessionStore`` must pass.

Subclass ``StoreConformance`` in a test module and override ``make_store``: a fixture returning an
async function that opens a new instance of your store on one database, empty when the test starts
(each call opens another instance on that same database; the suite closes what it opens)::

    from tether.testing.store_conformance import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def make_store(self, tmp_path):
            return lambda: MyStore.open(tmp_path / "sessions.db")

Needs pytest and pytest-asyncio.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio

from tether.store.base import (
    NotFound,
    SessionInfo,
    SessionQuery,
    SessionStore,
    StoreConflict,
    StoredMessage,
    TurnRecord,
)

MakeStore = Callable[[], Awaitable[SessionStore]]

UTC = dt.UTC
LONG_AGO = dt.datetime(2001, 1, 1, tzinfo=UTC)

TRICKY_CONTENT: list[Any] = [
    {"type": "thinking", "thinking": "Let me think… ∑ x² 🤔", "signature": "EqQBCkgIARAB/+=" + "A" * 400 + "=="},
    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"},
    {"type": "text", "citations": None,
     "text": "naïve café 日本語 עברית مرحبا e\u0301 👩‍👩‍👧 \t\n\r \\ \" ' \u0000 \u2028 lone \ud83d surrogate"},
    {"type": "tool_use", "id": "toolu_01", "name": "bash",
     "input": {"command": "echo 'hi' | wc -c", "n": [1, 2.5, -0.0, 1e-300, 2**70, True, None, ""], "e": {}}},
    {"type": "tool_result", "tool_use_id": "toolu_01", "is_error": False, "content": [
        {"type": "text", "text": "ok"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "search_result", "content": [{"deep": [[[{"z": "y"}]]]}]},
    ]},
    {"type": "text", "text": "large " + "x" * 1_000_000},
    {"z": 1, "a": 2, "m": {"b": 1, "a": 2}},
]


def new_id(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def text_message(seq: int, text: str | None = None, role: str | None = None) -> StoredMessage:
    role = role or ("user" if seq % 2 == 0 else "assistant")
    return StoredMessage(seq, role, [{"type": "text", "text": text if text is not None else f"message {seq}"}])


def texts(messages: list[StoredMessage]) -> list[str]:
    return [m.content[0]["text"] for m in messages]


def turn_record(turn: int, **fields: Any) -> TurnRecord:
    values: dict[str, Any] = dict(model="claude-test", input_tokens=100, output_tokens=20, cache_read_tokens=50,
                                  cache_write_5m_tokens=7, cache_write_1h_tokens=3, dollars=0.25)
    return TurnRecord(turn=turn, **{**values, **fields})


def assert_utc(moment: dt.datetime | None) -> None:
    assert moment is not None and moment.utcoffset() == dt.timedelta(0), moment


class StoreConformance:
    pytestmark = [pytest.mark.asyncio]

    @pytest.fixture
    def make_store(self) -> MakeStore:
        raise NotImplementedError("override make_store: a fixture returning an async function that opens a store")

    @pytest_asyncio.fixture
    async def store(self, make_store: MakeStore) -> AsyncIterator[SessionStore]:
        store = await make_store()
        yield store
        await store.close()

    @asynccontextmanager
    async def another(self, make_store: MakeStore) -> AsyncIterator[SessionStore]:
        store = await make_store()
        try:
            yield store
        finally:
            await store.close()

    async def session(self, store: SessionStore, *messages: StoredMessage, **fields: Any) -> str:
        info = await store.create(SessionInfo(id=new_id(), **{"model": "claude-test", **fields}))
        if messages:
            await store.append(info.id, messages)
        return info.id

    # Sessions

    async def test_create_then_get_returns_what_was_created(self, store: SessionStore) -> None:
        created_at = dt.datetime(2025, 6, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
        sid = new_id()
        made = await store.create(SessionInfo(id=sid, model="claude-x", title="Title", tags=["a", "b"],
                                              metadata={"k": [1, {"n": None}]}, created_at=created_at))
        got = await store.get(sid)
        assert got is not None and made == got, "create() returns the session as stored"
        assert (got.model, got.title, got.tags, got.metadata) == ("claude-x", "Title", ["a", "b"], {"k": [1, {"n": None}]})
        assert (got.status, got.parent_id, got.fork_seq, got.turns, got.dollars) == ("running", None, None, 0, 0)
        assert got.created_at == created_at and got.updated_at == created_at
        assert_utc(got.created_at)
        assert_utc(got.updated_at)

    async def test_get_of_an_unknown_session_is_none(self, store: SessionStore) -> None:
        assert await store.get(new_id()) is None

    async def test_create_of_a_taken_id_conflicts(self, store: SessionStore) -> None:
        sid = await self.session(store, title="first")
        with pytest.raises(StoreConflict):
            await store.create(SessionInfo(id=sid, model="other", title="second"))
        assert (await store.get(sid)).title == "first"  # type: ignore[union-attr]

    async def test_update_changes_fields_and_updated_at(self, store: SessionStore) -> None:
        sid = await self.session(store, updated_at=LONG_AGO, created_at=LONG_AGO)
        await store.update(sid, title="new", tags=["z"], status="completed", metadata={"x": 1})
        got = await store.get(sid)
        assert got is not None
        assert (got.title, got.tags, got.status, got.metadata) == ("new", ["z"], "completed", {"x": 1})
        assert got.updated_at is not None and got.updated_at > LONG_AGO
        assert got.created_at == LONG_AGO
        with pytest.raises(TypeError):
            await store.update(sid, model="another")
        with pytest.raises(NotFound):
            await store.update(new_id(), title="x")

    async def test_list_is_newest_first_with_limit_and_offset(self, store: SessionStore) -> None:
        tag = new_id("tag")
        ids = [await self.session(store, tags=[tag], updated_at=LONG_AGO + dt.timedelta(days=i)) for i in range(4)]
        newest_first = ids[::-1]
        assert [s.id for s in await store.list(SessionQuery(tag=tag))] == newest_first
        assert [s.id for s in await store.list(SessionQuery(tag=tag, limit=2, offset=1))] == newest_first[1:3]
        assert await store.list(SessionQuery(tag=tag, offset=4)) == []

    async def test_list_filters_by_tag_status_and_dates(self, store: SessionStore) -> None:
        tag = new_id("tag")

        def day(n: int) -> dt.datetime:
            return LONG_AGO + dt.timedelta(days=n)

        a = await self.session(store, tags=[tag, "shared"], updated_at=day(1))
        b = await self.session(store, tags=[tag], status="failed", updated_at=day(2))
        await self.session(store, tags=[tag + "x", f"{tag[:-1]}"], updated_at=day(3))  # near misses
        assert {s.id for s in await store.list(SessionQuery(tag=tag))} == {a, b}
        assert [s.id for s in await store.list(SessionQuery(tag=tag, status="failed"))] == [b]
        assert [s.id for s in await store.list(SessionQuery(tag=tag, since=day(2)))] == [b]
        assert [s.id for s in await store.list(SessionQuery(tag=tag, until=day(2)))] == [a]
        assert await store.list(SessionQuery(tag=tag, since=day(3))) == []

    async def test_list_text_matches_titles_and_message_text(self, store: SessionStore) -> None:
        word = uuid.uuid4().hex[:10]
        in_title = await self.session(store, title=f"About {word.upper()} things")
        in_text = await self.session(store, text_message(0, f"we spoke of {word} today"))
        result = [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": f"{word}-ok"}]}]
        in_result = await self.session(store, StoredMessage(0, "user", result))
        await self.session(store, text_message(0, "nothing here"), title="unrelated")
        assert {s.id for s in await store.list(SessionQuery(text=word))} == {in_title, in_text, in_result}
        literal = await self.session(store, title=f"{word} is 50% done_ok")
        await self.session(store, title=f"{word} is 500 doneXok")
        assert [s.id for s in await store.list(SessionQuery(text=f"{word} is 50%"))] == [literal]
        assert [s.id for s in await store.list(SessionQuery(text="50% done_ok"))] == [literal]

    async def test_delete_removes_the_session_and_its_rows(self, store: SessionStore) -> None:
        sid = await self.session(store, text_message(0), text_message(1))
        await store.append(sid, [], turn_record(1))
        await store.tool_started(sid, "toolu_1", "bash", {})
        await store.delete(sid)
        assert await store.get(sid) is None
        with pytest.raises(NotFound):
            await store.messages(sid)
        await store.delete(sid)  # deleting what is gone does nothing
        await store.create(SessionInfo(id=sid, model="claude-test"))  # the id is free again, and empty
        assert await store.messages(sid) == [] and await store.turns(sid) == [] and await store.ledger(sid) == {}

    # Appending

    async def test_append_keeps_order_across_calls(self, store: SessionStore) -> None:
        sid = await self.session(store)
        await store.append(sid, [text_message(0), text_message(1)], turn_record(1))
        await store.append(sid, [text_message(2)])
        await store.append(sid, [text_message(3), text_message(4)], turn_record(2))
        got = await store.messages(sid)
        assert [m.seq for m in got] == [0, 1, 2, 3, 4]
        assert [m.role for m in got] == ["user", "assistant", "user", "assistant", "user"]
        assert texts(got) == [f"message {i}" for i in range(5)]
        for m in got:
            assert_utc(m.created_at)

    async def test_a_taken_seq_conflicts(self, store: SessionStore) -> None:
        sid = await self.session(store, text_message(0), text_message(1))
        for batch in ([text_message(1, "again")], [text_message(0, "again")], [text_message(1), text_message(2)]):
            with pytest.raises(StoreConflict):
                await store.append(sid, batch)
        assert texts(await store.messages(sid)) == ["message 0", "message 1"]

    async def test_a_gap_in_seqs_is_refused(self, store: SessionStore) -> None:
        sid = await self.session(store, text_message(0))
        for batch in ([text_message(2)], [text_message(1), text_message(3)]):
            with pytest.raises(ValueError):
                await store.append(sid, batch)
        assert len(await store.messages(sid)) == 1

    async def test_a_failed_append_leaves_nothing(self, store: SessionStore) -> None:
        sid = await self.session(store)
        await store.append(sid, [text_message(0)], turn_record(1))
        before = await store.get(sid)
        with pytest.raises(StoreConflict):  # turn 1 is taken: the messages must not stay either
            await store.append(sid, [text_message(1), text_message(2)], turn_record(1, input_tokens=999))
        assert texts(await store.messages(sid)) == ["message 0"]
        assert await store.turns(sid) == [turn_record(1)]
        after = await store.get(sid)
        assert after is not None and before is not None
        assert (after.turns, after.input_tokens, after.dollars) == (before.turns, before.input_tokens, before.dollars)
        await store.append(sid, [text_message(1)], turn_record(2))  # and the session goes on

    async def test_append_to_an_unknown_session_raises_not_found(self, store: SessionStore) -> None:
        with pytest.raises(NotFound):
            await store.append(new_id(), [text_message(0)])
        with pytest.raises(NotFound):
            await store.messages(new_id())

    async def test_content_round_trips_losslessly(self, store: SessionStore) -> None:
        sid = await self.session(store)
        sent = [StoredMessage(0, "assistant", TRICKY_CONTENT), StoredMessage(1, "user", [TRICKY_CONTENT[4]])]
        await store.append(sid, sent)
        got = await store.messages(sid)
        assert [(m.seq, m.role) for m in got] == [(0, "assistant"), (1, "user")]
        for before, after in zip(sent, got, strict=True):
            assert after.content == before.content
            assert json.dumps(after.content) == json.dumps(before.content)  # key order, -0.0, big ints

    async def test_totals_add_up_the_turns(self, store: SessionStore) -> None:
        sid = await self.session(store)
        first, second = turn_record(1), turn_record(2, input_tokens=1000, output_tokens=1, dollars=1.5)
        await store.append(sid, [text_message(0), text_message(1)], first)
        await store.append(sid, [], second)  # a turn without new messages is fine
        assert await store.turns(sid) == [first, second]
        got = await store.get(sid)
        assert got is not None
        assert (got.turns, got.input_tokens, got.output_tokens) == (2, 1100, 21)
        assert (got.cache_read_tokens, got.cache_write_tokens) == (100, 20)
        assert got.dollars == pytest.approx(1.75)

    # The tool ledger

    async def test_tool_started_twice_says_no_the_second_time(self, store: SessionStore) -> None:
        sid, other = await self.session(store), await self.session(store)
        assert await store.tool_started(sid, "toolu_1", "bash", {"command": "ls ☃"}) is True
        assert await store.tool_started(sid, "toolu_1", "bash", {"command": "ls ☃"}) is False
        assert await store.tool_started(other, "toolu_1", "bash", {}) is True  # ledgers are per session
        entry = (await store.ledger(sid))["toolu_1"]
        assert (entry.name, entry.input, entry.status, entry.result) == ("bash", {"command": "ls ☃"}, "started", None)
        assert_utc(entry.started_at)

    async def test_tool_finished_records_the_result_once(self, store: SessionStore) -> None:
        sid = await self.session(store)
        await store.tool_started(sid, "toolu_1", "bash", {})
        result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "42"}]}
        await store.tool_finished(sid, "toolu_1", result)
        await store.tool_finished(sid, "toolu_1", {"type": "tool_result", "content": "late duplicate"})
        entry = (await store.ledger(sid))["toolu_1"]
        assert (entry.status, entry.result) == ("finished", result)
        assert_utc(entry.finished_at)
        assert await store.tool_started(sid, "toolu_1", "bash", {}) is False
        with pytest.raises(NotFound):
            await store.tool_finished(sid, "toolu_never_started", result)

    async def test_the_ledger_of_an_unknown_session_raises_not_found(self, store: SessionStore) -> None:
        with pytest.raises(NotFound):
            await store.tool_started(new_id(), "toolu_1", "bash", {})
        with pytest.raises(NotFound):
            await store.ledger(new_id())

    async def test_concurrent_tool_started_has_exactly_one_winner(self, store: SessionStore,
                                                                  make_store: MakeStore) -> None:
        sid = await self.session(store)
        async with self.another(make_store) as second:
            calls = [s.tool_started(sid, "toolu_race", "bash", {"i": i}) for i in range(20) for s in (store, second)]
            outcomes = await asyncio.gather(*calls)
        assert outcomes.count(True) == 1
        assert list(await store.ledger(sid)) == ["toolu_race"]

    # Forks

    async def test_a_fork_shares_its_parents_prefix(self, store: SessionStore) -> None:
        parent = await self.session(store, *(text_message(i) for i in range(4)), title="T", tags=["t"])
        fork = await store.fork(parent, 2, new_id("fork"))
        assert (fork.parent_id, fork.fork_seq, fork.title, fork.tags, fork.model) == (parent, 2, "T", ["t"], "claude-test")
        assert (fork.turns, fork.dollars, fork.status) == (0, 0, "idle")
        assert (await store.get(fork.id)).status == "idle"  # type: ignore[union-attr]
        assert texts(await store.messages(fork.id)) == ["message 0", "message 1"]
        with pytest.raises(StoreConflict):
            await store.append(fork.id, [text_message(1, "taken by the prefix")])
        await store.append(fork.id, [text_message(2, "fork 2")], turn_record(1))
        await store.append(parent, [text_message(4)])
        assert texts(await store.messages(fork.id)) == ["message 0", "message 1", "fork 2"]
        assert texts(await store.messages(parent)) == [f"message {i}" for i in range(5)]
        got = await store.get(fork.id)
        assert got is not None and got.turns == 1 and (await store.get(parent)).turns == 0  # type: ignore[union-attr]

    async def test_fork_checks_its_arguments(self, store: SessionStore) -> None:
        parent = await self.session(store, text_message(0), text_message(1))
        taken = await self.session(store)
        with pytest.raises(ValueError):
            await store.fork(parent, 3, new_id())
        with pytest.raises(NotFound):
            await store.fork(new_id(), 0, new_id())
        with pytest.raises(StoreConflict):
            await store.fork(parent, 1, taken)
        empty = await store.fork(parent, 0, new_id())
        assert await store.messages(empty.id) == []
        whole = await store.fork(parent, 2, new_id())
        assert texts(await store.messages(whole.id)) == ["message 0", "message 1"]

    async def test_a_fork_of_a_fork(self, store: SessionStore) -> None:
        root = await self.session(store, *(text_message(i, f"root {i}") for i in range(4)))
        middle = (await store.fork(root, 3, new_id())).id
        await store.append(middle, [text_message(3, "middle 3"), text_message(4, "middle 4")])
        early = (await store.fork(middle, 2, new_id())).id
        late = (await store.fork(middle, 4, new_id())).id
        await store.append(late, [text_message(4, "late 4")])
        assert texts(await store.messages(early)) == ["root 0", "root 1"]
        assert texts(await store.messages(late)) == ["root 0", "root 1", "root 2", "middle 3", "late 4"]
        assert [m.seq for m in await store.messages(late)] == [0, 1, 2, 3, 4]

    async def test_deleting_a_parent_keeps_its_forks_whole(self, store: SessionStore) -> None:
        root = await self.session(store, *(text_message(i, f"root {i}") for i in range(4)))
        middle = (await store.fork(root, 3, new_id())).id
        await store.append(middle, [text_message(3, "middle 3"), text_message(4, "middle 4")])
        leaves = [(await store.fork(middle, at, new_id())).id for at in (0, 2, 4, 5)]
        before = {sid: texts(await store.messages(sid)) for sid in [middle, *leaves]}
        await store.delete(root)
        assert {sid: texts(await store.messages(sid)) for sid in [middle, *leaves]} == before
        await store.delete(middle)
        assert {sid: texts(await store.messages(sid)) for sid in leaves} == {s: before[s] for s in leaves}
        await store.append(leaves[3], [text_message(5, "leaf 5")])
        assert texts(await store.messages(leaves[3]))[-2:] == ["middle 4", "leaf 5"]

    async def test_deleting_a_fork_leaves_its_parent_alone(self, store: SessionStore) -> None:
        parent = await self.session(store, text_message(0), text_message(1))
        fork = (await store.fork(parent, 1, new_id())).id
        await store.delete(fork)
        assert texts(await store.messages(parent)) == ["message 0", "message 1"]

    # Retention

    async def test_prune_deletes_sessions_not_updated_since(self, store: SessionStore) -> None:
        stale = await self.session(store, created_at=LONG_AGO)
        parent = await self.session(store, text_message(0, "kept by the fork"))
        fork = (await store.fork(parent, 1, new_id())).id
        touched = await self.session(store, text_message(0))
        await asyncio.sleep(0.01)
        cut = dt.datetime.now(UTC)
        await asyncio.sleep(0.01)
        await store.update(touched, title="touched after the cut")
        await store.append(fork, [text_message(1, "fork 1")])
        fresh = await self.session(store)
        assert await store.prune(cut) == 2
        assert await store.get(stale) is None and await store.get(parent) is None
        assert all([await store.get(s) for s in (touched, fork, fresh)])
        assert texts(await store.messages(fork)) == ["kept by the fork", "fork 1"]
        assert await store.prune(cut) == 0

    # Several instances on one database

    async def test_concurrent_appends_from_two_instances_one_wins(self, store: SessionStore,
                                                                  make_store: MakeStore) -> None:
        sid = await self.session(store)
        async with self.another(make_store) as second:
            for seq in range(5):
                outcomes = await asyncio.gather(
                    store.append(sid, [text_message(seq, f"first {seq}")], turn_record(seq + 1)),
                    second.append(sid, [text_message(seq, f"second {seq}")], turn_record(seq + 1)),
                    return_exceptions=True,
                )
                assert sorted(type(o).__name__ for o in outcomes) == ["NoneType", "StoreConflict"], outcomes
            got = await second.messages(sid)
        assert [m.seq for m in got] == [0, 1, 2, 3, 4]
        assert (await store.get(sid)).turns == 5  # type: ignore[union-attr]

    async def test_reopening_keeps_everything(self, make_store: MakeStore) -> None:
        async with self.another(make_store) as first:
            sid = await self.session(first, StoredMessage(0, "user", TRICKY_CONTENT[:3]), title="kept", tags=["k"])
            await first.append(sid, [text_message(1)], turn_record(1))
            await first.tool_started(sid, "toolu_1", "bash", {"a": 1})
            fork = (await first.fork(sid, 1, new_id())).id
            before = (await first.get(sid), await first.messages(sid), await first.turns(sid),
                      await first.ledger(sid), await first.messages(fork))
        for _ in range(2):  # opening again, twice, changes nothing
            async with self.another(make_store) as again:
                after = (await again.get(sid), await again.messages(sid), await again.turns(sid),
                         await again.ledger(sid), await again.messages(fork))
                assert after == before
