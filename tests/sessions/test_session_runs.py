"""Sessions for users: resume, fork, export and import, over a real SQLite store and the fake API."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tether import Message, tool
from tether.sessions import SessionNotFound, Sessions
from tether.store.base import SessionQuery
from tether.testing import Turn, thinking, tool_use

SYSTEM = "You are a meticulous assistant. " * 200  # over the model's minimum cacheable length


@tool
def add(a: int, b: int) -> int:
    """Add.

    Args:
        a: one
        b: two
    """
    return a + b


async def drain(run, task=None):
    return [e async for e in run.events(task)]


async def test_a_session_records_each_message_usage_and_status(fake, key, store, make_agent):
    fake.script([Turn([thinking("hm", signature="s1"), tool_use("add", {"a": 2, "b": 3})]), "5"], key=key)
    sessions = Sessions(store)
    run = await sessions.new(make_agent(tools=[add]), title="adding", tags=["math"])
    events = await drain(run, "add 2 and 3")
    info = await sessions.get(run.id)
    assert info.status == "completed" and info.turns == 2 and info.title == "adding"
    assert info.dollars == pytest.approx(events[-1].dollars)
    stored = await store.messages(run.id)
    assert [m.content for m in stored] == [m.to_wire()["content"] for m in run.messages]
    assert stored[1].content[0] == {"type": "thinking", "thinking": "hm", "signature": "s1"}
    assert (await store.ledger(run.id))[stored[1].content[1]["id"]].status == "finished"
    assert [s.id for s in await store.list(SessionQuery(tag="math"))] == [run.id]


async def test_resume_continues_the_conversation(fake, key, store, make_agent):
    fake.script(["first answer", "second answer"], key=key)
    sessions = Sessions(store)
    run = await sessions.new(make_agent())
    await drain(run, "one")
    resumed = await sessions.resume(make_agent(), run.id)
    assert [m.role for m in resumed.messages] == ["user", "assistant"]
    assert await drain(resumed) and resumed.messages[-1].text == "first answer"  # nothing left to do
    await drain(resumed, "two")
    stored = await store.messages(run.id)
    assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]
    assert fake.last_request(key).json()["messages"][0]["content"][0]["text"] == "one"


async def test_a_resumed_run_uses_recorded_results_and_does_not_rerun_interrupted_calls(
        fake, key, store, make_agent):
    calls = []

    @tool(name="effect")
    def effect(n: int) -> str:
        """Do something with an effect.

        Args:
            n: which
        """
        calls.append(n)
        return f"did {n}"

    sessions = Sessions(store)
    fake.script([Turn([tool_use("effect", {"n": 1}), tool_use("effect", {"n": 2}), tool_use("effect", {"n": 3})]),
                 "all done"], key=key)
    agent = make_agent(tools=[effect])
    run = await sessions.new(agent)
    # Simulate a crash after the assistant message was stored: call 1 finished, call 2 started, call 3 not.
    events = run.events("go")
    async for event in events:
        if event.type == "turn_end":
            break
    await events.aclose()
    ids = [c.id for c in run.messages[-1].tool_uses]
    await store.tool_started(run.id, ids[0], "effect", {"n": 1})
    await store.tool_finished(run.id, ids[0], {"type": "tool_result", "tool_use_id": ids[0], "content": "did 1"})
    await store.tool_started(run.id, ids[1], "effect", {"n": 2})

    resumed = await sessions.resume(make_agent(tools=[effect]), run.id)
    await drain(resumed)
    assert calls == [3]
    results = (await store.messages(run.id))[2].content
    assert results[0]["content"] == "did 1"
    assert results[1]["is_error"] is True and "interrupted" in results[1]["content"]
    assert results[2]["content"] == "did 3"
    assert resumed.messages[-1].text == "all done"


async def test_a_fork_shares_the_prefix_and_its_first_turn_hits_the_cache(fake, key, store, make_agent):
    fake.script(["The capital is Paris.", "It has about 2 million people.", "It is on the Seine."], key=key)
    sessions = Sessions(store)
    run = await sessions.new(make_agent(system=SYSTEM))
    await drain(run, "capital of France?")
    await drain(run, "population?")
    fork = await sessions.fork(run.id, at=2)
    assert fork.parent_id == run.id and fork.fork_seq == 2
    forked = await sessions.resume(make_agent(system=SYSTEM), fork.id)
    assert [m.text for m in forked.messages] == ["capital of France?", "The capital is Paris."]
    events = await drain(forked, "river?")
    first = next(e for e in events if e.type == "usage")
    assert first.usage.cache_read_input_tokens > 0, "the fork's first turn reads the shared prefix from cache"
    assert len(await store.messages(run.id)) == 4 and len(await store.messages(fork.id)) == 4
    with pytest.raises(Exception, match="cannot fork"):
        await sessions.fork(run.id, at=9)


async def test_export_and_import_round_trip_losslessly(fake, key, store, make_agent, tmp_path):
    fake.script([Turn([thinking("hm", signature="sig"), tool_use("add", {"a": 1, "b": 1})]), "2 — ✓"], key=key)
    sessions = Sessions(store)
    run = await sessions.new(make_agent(tools=[add]), title="export me", tags=["x"])
    await drain(run, "add")
    exported = await sessions.export_json(run.id)
    imported = await sessions.import_json(exported)
    assert imported.id != run.id and imported.title == "export me"
    again = await sessions.export_json(imported.id)
    original, copy = json.loads(exported), json.loads(again)
    assert copy["messages"] == original["messages"]
    assert json.dumps(copy["messages"]) == json.dumps(original["messages"])
    markdown = await sessions.export_markdown(run.id)
    assert "# export me" in markdown and "**tool call** `add`" in markdown and "2 — ✓" in markdown
    with pytest.raises(Exception, match="not a tether session export"):
        await sessions.import_json("{}")


async def test_retention_prunes_old_sessions(fake, key, store, make_agent):
    fake.script(["a", "b"], key=key)
    sessions = Sessions(store)
    old = await sessions.new(make_agent())
    await drain(old, "old")
    new = await sessions.new(make_agent())
    await drain(new, "new")
    cutoff = (await store.get(new.id)).updated_at - dt.timedelta(microseconds=1)
    assert cutoff > (await store.get(old.id)).updated_at
    assert await store.prune(cutoff) == 1
    with pytest.raises(SessionNotFound):
        await sessions.get(old.id)
    assert (await sessions.get(new.id)).id == new.id


async def test_a_follow_up_rides_with_the_results_of_interrupted_calls(fake, key, store, make_agent):
    sessions = Sessions(store)
    fake.script([Turn([tool_use("add", {"a": 1, "b": 1})]), "2, and hello"], key=key)
    run = await sessions.new(make_agent(tools=[add]))
    events = run.events("add")
    async for event in events:
        if event.type == "turn_end":
            break
    await events.aclose()  # the process died before the tools ran
    resumed = await sessions.resume(make_agent(tools=[add]), run.id)
    await drain(resumed, "also, hello")
    results = resumed.messages[2]
    assert [b.type for b in results.content] == ["tool_result", "text"]
    assert results.content[1].text == "also, hello"
    assert [m.role for m in resumed.messages] == ["user", "assistant", "user", "assistant"]


async def test_a_new_message_after_an_unanswered_one_joins_it_in_one_turn(fake, key, store, make_agent):
    sessions = Sessions(store)
    fake.script(["one answer to both"], key=key)
    run = await sessions.new(make_agent())
    await run.journal.appended(Message.user("first"), None, 0.0)  # the run was interrupted before answering
    resumed = await sessions.resume(make_agent(), run.id)
    await drain(resumed, "second")
    assert [m.role for m in resumed.messages] == ["user", "assistant"]
    assert [b.text for b in resumed.messages[0].content] == ["first", "second"]
    assert len(fake.requests_for(key)) == 1
    stored = await store.messages(run.id)
    assert [m.role for m in stored] == ["user", "user", "assistant"], "the store keeps each message as it came"
    again = await sessions.resume(make_agent(), run.id)
    assert [m.to_wire() for m in again.messages] == [m.to_wire() for m in resumed.messages]


async def test_a_call_still_waiting_for_approval_when_the_run_stops_is_reported_as_never_run(
        fake, key, store, make_agent):
    import asyncio

    from tether.tools.policy import PermissionPolicy

    ran = []

    @tool(name="effect")
    def effect(n: int) -> str:
        """Do something.

        Args:
            n: which
        """
        ran.append(n)
        return "done"

    asking = asyncio.Event()

    async def never_answers(call, context):
        asking.set()
        await asyncio.sleep(3600)

    async def yes(call, context):
        return "yes"  # never asked: the model was told the call did not run

    fake.script([Turn([tool_use("effect", {"n": 1})]), "finished"], key=key)
    sessions = Sessions(store)
    run = await sessions.new(make_agent(tools=[effect], policy=PermissionPolicy({"effect": "ask"},
                                                                               approve=never_answers)))
    task = asyncio.create_task(drain(run, "go"))
    await asyncio.wait_for(asking.wait(), 10)
    task.cancel()  # the service shuts down while the user has not answered
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.ledger(run.id) == {}, "a call awaiting approval was never claimed"
    result = (await store.messages(run.id))[-1].content[0]
    assert result["is_error"] and "before this tool call ran; it had no effect" in result["content"]
    resumed = await sessions.resume(make_agent(tools=[effect], policy=PermissionPolicy({"effect": "ask"},
                                                                                       approve=yes)), run.id)
    await drain(resumed)
    assert ran == [] and resumed.messages[-1].text == "finished"
