"""The agent loop end to end: the SDK client talks to the fake API over a socket; nothing is patched."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from tether import (
    ContextWindowExceeded,
    Deny,
    Hooks,
    LimitExceeded,
    Modify,
    RequestError,
    Settings,
    ToolResultBlock,
    tool,
)
from tether.api.types import messages_from_json
from tether.config import CompactionSettings, LimitSettings, OutputSettings
from tether.testing import Turn, refusal, text, thinking, tool_use


def events_of(kind, events):
    return [e for e in events if e.type == kind]


@tool
def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: the first
        b: the second
    """
    return a + b


@tool
def explode() -> str:
    """Always fails."""
    raise RuntimeError("the disk is on fire")


@tool(timeout=0.2)
async def slow() -> str:
    """Never finishes in time."""
    await asyncio.sleep(30)
    return "late"


async def collect(agent, task, **kwargs):
    return [e async for e in agent.stream(task, **kwargs)]


async def test_a_text_answer_streams_and_ends(fake, key, make_agent):
    fake.script(["Hello from the fake."], key=key)
    events = await collect(make_agent(), "hi")
    kinds = [e.type for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_end"
    assert "".join(e.text for e in events_of("text_delta", events)) == "Hello from the fake."
    assert kinds.index("usage") < kinds.index("turn_end") < kinds.index("run_end")
    end = events[-1]
    assert end.outcome == "completed" and end.turns == 1 and end.text == "Hello from the fake."
    assert end.usage.output_tokens > 0 and end.dollars > 0


async def test_tools_run_and_their_results_go_back_in_order_in_one_message(fake, key, make_agent):
    fake.script([
        Turn([text("Adding."), tool_use("add", {"a": 1, "b": 2}), tool_use("add", {"a": 3, "b": 4})]),
        "The sums are 3 and 7.",
    ], key=key)
    result = await make_agent(tools=[add]).run("add things")
    assert result.text == "The sums are 3 and 7." and result.turns == 2
    sent = fake.last_request(key).json()["messages"]
    results = sent[-1]["content"]
    assert [r["type"] for r in results] == ["tool_result", "tool_result"]
    assert [r["content"] for r in results] == ["3", "7"]
    assert [r["tool_use_id"] for r in results] == [b["id"] for b in sent[-2]["content"] if b["type"] == "tool_use"]


async def test_tool_calls_stream_their_input_and_finish_with_it(fake, key, make_agent):
    fake.script([Turn([tool_use("add", {"a": 10, "b": 20})]), "30"], key=key)
    events = await collect(make_agent(tools=[add]), "go")
    started, finished = events_of("tool_call_started", events), events_of("tool_call_finished", events)
    pieces = "".join(e.partial_json for e in events_of("tool_input_delta", events))
    assert started[0].name == "add" and json.loads(pieces) == {"a": 10, "b": 20}
    assert finished[0].input == {"a": 10, "b": 20} and finished[0].id == started[0].id
    assert events_of("tool_result", events)[0].content == "30"


async def test_bad_tool_calls_become_error_results_and_the_run_goes_on(fake, key, make_agent):
    fake.script([
        Turn([tool_use("add", {"a": 1}), tool_use("add", {"a": "x", "b": 2}), tool_use("nope", {}),
              tool_use("explode", {}), tool_use("slow", {})]),
        "I see the errors.",
    ], key=key)
    events = await collect(make_agent(tools=[add, explode, slow]), "try")
    results = events_of("tool_result", events)
    assert all(r.is_error for r in results)
    assert "input: 'b' is a required property" in results[0].content
    assert "input.a: 'x' is not of type 'integer'" in results[1].content
    assert "no tool named 'nope'" in results[2].content and "add" in results[2].content
    assert "RuntimeError: the disk is on fire" in results[3].content
    assert "did not finish within 0.2 seconds" in results[4].content
    assert events[-1].outcome == "completed"
    sent = fake.last_request(key).json()["messages"][-1]["content"]
    assert all(block["is_error"] is True for block in sent)


async def test_calls_of_one_turn_run_concurrently_unless_a_tool_must_run_alone(fake, key, make_agent):
    running, peak = 0, {"shared": 0, "alone": 0}

    def probe(kind):
        async def call() -> str:
            nonlocal running
            running += 1
            peak[kind] = max(peak[kind], running)
            await asyncio.sleep(0.05)
            running -= 1
            return "ok"
        return call

    shared = tool(probe("shared"), name="shared")
    alone = tool(probe("alone"), name="alone", exclusive=True)
    fake.script([Turn([tool_use("shared", {}), tool_use("shared", {}), tool_use("shared", {}),
                       tool_use("alone", {}), tool_use("shared", {})]), "done"], key=key)
    await make_agent(tools=[shared, alone]).run("go")
    assert peak == {"shared": 3, "alone": 1}


async def test_max_tokens_continues_the_same_assistant_message(fake, key, make_agent):
    fake.script([Turn([text("Hello wor ")], stop_reason="max_tokens"), "ld!"], key=key)
    result = await make_agent().run("greet")
    assert result.text == "Hello world!"
    assert [m.role for m in result.messages] == ["user", "assistant"]
    continuation = fake.last_request(key).json()["messages"]
    assert continuation[-1]["role"] == "assistant"
    assert continuation[-1]["content"][-1]["text"] == "Hello wor"


async def test_a_response_still_cut_after_the_bound_ends_the_run(fake, key, make_agent):
    cut = Turn([text("more")], stop_reason="max_tokens")
    fake.script([cut, cut], key=key)
    settings = Settings(output=OutputSettings(max_continuations=1))
    events = await collect(make_agent(settings=settings), "go")
    assert events[-1].outcome == "system_error" and "max_tokens" in events[-1].error


async def test_pause_turn_is_resent_as_is(fake, key, make_agent):
    fake.script([Turn([text("Searching")], stop_reason="pause_turn"), "Found it."], key=key)
    result = await make_agent().run("search")
    assert result.text == "SearchingFound it."
    assert fake.last_request(key).json()["messages"][-1]["role"] == "assistant"


async def test_a_refusal_ends_the_run_with_its_category(fake, key, make_agent):
    fake.script([refusal("not this", category="cyber")], key=key)
    result = await make_agent().run("do harm")
    assert result.outcome == "refusal" and result.refusal_category == "cyber"


async def test_context_window_exceeded_is_a_clear_error(fake, key, make_agent):
    fake.script([Turn([text("...")], stop_reason="model_context_window_exceeded")], key=key)
    settings = Settings(compaction=CompactionSettings(enabled=False))
    with pytest.raises(ContextWindowExceeded, match="context window") as info:
        await make_agent(settings=settings).run("go")
    assert info.value.result.messages[-1].role == "assistant"


async def test_context_window_exceeded_with_nothing_to_compact_is_a_clear_error(fake, key, make_agent):
    fake.script([Turn([text("...")], stop_reason="model_context_window_exceeded")], key=key)
    with pytest.raises(ContextWindowExceeded, match="compacting it did not make it smaller") as info:
        await make_agent().run("go")
    assert [m.role for m in info.value.result.messages] == ["user"]


async def test_max_tokens_above_the_model_limit_fails_before_any_call(fake, key, make_agent):
    settings = Settings(model="claude-haiku-4-5", output=OutputSettings(max_tokens=100_000))
    with pytest.raises(RequestError, match="limit of 64000"):
        make_agent(settings=settings)
    assert fake.requests_for(key) == []


@pytest.mark.parametrize(("limits", "name"), [
    (LimitSettings(max_turns=2), "max_turns"),
    (LimitSettings(max_tokens=10), "max_tokens"),
    (LimitSettings(max_dollars=0.000001), "max_dollars"),
])
async def test_each_limit_ends_the_run_with_a_typed_error_and_the_partial_result(
        fake, key, make_agent, limits, name):
    fake.script([Turn([tool_use("add", {"a": 1, "b": 1})])] * 5, key=key)
    with pytest.raises(LimitExceeded) as info:
        await make_agent(tools=[add], settings=Settings(limits=limits)).run("loop")
    assert info.value.limit == name
    partial = info.value.result
    assert partial.turns >= 1 and partial.messages[-1].role == "user"


async def test_wall_time_is_a_limit(fake, key, make_agent):
    @tool
    def tick() -> str:
        """Let time pass."""
        fake.clock.advance(100)
        return "tick"

    fake.script([Turn([tool_use("tick", {})])] * 3, key=key)
    settings = Settings(limits=LimitSettings(max_seconds=50))
    with pytest.raises(LimitExceeded, match="limit of 50s"):
        await make_agent(tools=[tick], settings=settings).run("wait")


async def test_interrupting_a_run_kills_its_tools_and_leaves_a_valid_conversation(fake, key, make_agent):
    cancelled = asyncio.Event()

    @tool
    async def forever() -> str:
        """Runs until cancelled."""
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    fake.script([Turn([tool_use("forever", {}), tool_use("add", {"a": 1, "b": 2})])], key=key)
    run = make_agent(tools=[forever, add]).start()

    async def drive():
        async for _ in run.events("go"):
            pass

    task = asyncio.create_task(drive())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()
    last = run.messages[-1]
    assert last.role == "user" and all(isinstance(b, ToolResultBlock) for b in last.content)
    assert [b.tool_use_id for b in last.content] == [c.id for c in run.messages[-2].tool_uses]
    interrupted, finished = last.content
    assert interrupted.is_error and "interrupted" in interrupted.content
    assert finished.content == "3" and not finished.is_error


async def test_a_refused_parameter_is_dropped_with_a_warning_and_remembered(fake, key, make_agent):
    fake.script(["one", "two"], key=key)
    agent = make_agent()
    run = agent.start()
    run.builder.params["temperature"] = 0.5  # refused under anthropic-version 2026-10-21
    events = [e async for e in run.events("hi")]
    warning = events_of("warning", events)[0]
    assert warning.code == "refused_parameter" and "temperature" in warning.message
    assert "temperature" not in fake.last_request(key).json()
    assert [e async for e in run.events("again")][-1].outcome == "completed"
    assert len(events_of("warning", [e async for e in run.events("third")])) == 0


async def test_without_streaming_the_same_events_are_produced(fake, key, make_agent):
    script = [Turn([text("Adding."), tool_use("add", {"a": 2, "b": 2})]), "4"]
    fake.script(script, key=key)
    streamed = await collect(make_agent(tools=[add]), "add")
    fake.script(script, key=key)
    settings = Settings(output=OutputSettings(streaming=False, max_tokens=4096))
    plain = await collect(make_agent(tools=[add], settings=settings), "add")
    assert fake.last_request(key).json().get("stream") in (None, False)

    def shape(events):
        return [(e.type, getattr(e, "name", None), getattr(e, "input", None)) for e in events
                if e.type not in ("text_delta", "tool_input_delta")]

    assert shape(plain) == shape(streamed)
    text_of = lambda events: "".join(e.text for e in events_of("text_delta", events))  # noqa: E731
    assert text_of(plain) == text_of(streamed)


async def test_hooks_can_deny_modify_and_replace(fake, key, make_agent):
    class Guard(Hooks):
        async def before_tool(self, call):
            if call.input.get("a") == 666:
                return Deny("that number is not allowed")
            return Modify({"a": call.input["a"], "b": 100})

        async def after_tool(self, call, result):
            return dataclasses.replace(result, content=f"sum={result.content}")

    fake.script([Turn([tool_use("add", {"a": 666, "b": 1}), tool_use("add", {"a": 1, "b": 1})]), "ok"], key=key)
    events = await collect(make_agent(tools=[add], hooks=Guard()), "go")
    results = events_of("tool_result", events)
    assert results[0].is_error and "not allowed" in results[0].content
    assert results[1].content == "sum=101"


async def test_thinking_blocks_and_signatures_round_trip_unchanged(fake, key, make_agent):
    fake.script([Turn([thinking("I should add.", signature="sig-abc=="), tool_use("add", {"a": 1, "b": 1})]),
                 "2"], key=key)
    await make_agent(tools=[add]).run("think")
    assistant = fake.last_request(key).json()["messages"][1]["content"][0]
    assert assistant == {"type": "thinking", "thinking": "I should add.", "signature": "sig-abc=="}


async def test_a_saved_conversation_restores_losslessly_and_continues(fake, key, make_agent):
    fake.script([Turn([thinking("hm", signature="s1"), tool_use("add", {"a": 1, "b": 1})]), "2", "and 3"],
                key=key)
    first = await make_agent(tools=[add]).run("add")
    restored = messages_from_json(first.conversation_json())
    assert [m.to_wire() for m in restored] == [m.to_wire() for m in first.messages]
    second = await make_agent(tools=[add]).run("more", messages=restored)
    assert second.text == "and 3"
    assert fake.last_request(key).json()["messages"][:4] == [m.to_wire() for m in first.messages]


async def test_usage_and_cost_are_counted_per_turn_and_per_run(fake, key, make_agent):
    fake.script([Turn([tool_use("add", {"a": 1, "b": 1})]), "2"], key=key)
    events = await collect(make_agent(tools=[add]), "add")
    reports = events_of("usage", events)
    assert [r.turn for r in reports] == [1, 2]
    assert reports[-1].total_usage == reports[0].usage + reports[1].usage
    assert reports[-1].total_dollars == pytest.approx(reports[0].dollars + reports[1].dollars)
    assert events[-1].dollars == pytest.approx(reports[-1].total_dollars)


async def test_a_stream_restarted_by_the_retry_wrapper_is_announced_and_its_partial_output_dropped(
        fake, key, make_agent):
    from tether import AnthropicClient
    from tether.fleet.retry import RetryingClient
    from tether.testing import ResetMidStream

    fake.script(["Long answer " * 40] * 2, key=key)  # the failed attempt takes one turn
    fake.fail_next(ResetMidStream(after_events=6), key=key)
    agent = make_agent()
    async with AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=0) as api:
        agent.client = RetryingClient(api, base=0.01)
        events = await collect(agent, "talk")
    warnings = events_of("warning", events)
    assert [w.code for w in warnings] == ["stream_restarted"]
    assert events[-1].outcome == "completed"
    after = events[events.index(warnings[0]) + 1:]
    assert "".join(e.text for e in events_of("text_delta", after)) == "Long answer " * 40
    assert events[-1].turns == 1
