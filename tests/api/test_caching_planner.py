import json

from tether.api.caching import CacheMonitor, CachePlanner, render, render_json
from tether.api.catalog import default_catalog
from tether.api.types import Message, MessagesRequest, TextBlock, ThinkingBlock, ToolSpec, Usage, dumps

OPUS = default_catalog().get("claude-opus-4-8")  # minimum 1024 tokens
BIG = "x" * 6000  # 1500 tokens


def request(messages, tools=True):
    return MessagesRequest(
        "claude-opus-4-8", 1000, messages,
        system=[TextBlock("system " + BIG)],
        tools=[ToolSpec("a", "A", {"type": "object"}), ToolSpec("b", "B", {"type": "object"})] if tools else [],
    )


def breakpoints(body):
    found = []
    for i, tool in enumerate(body.get("tools", [])):
        if "cache_control" in tool:
            found.append(("tool", i))
    for i, block in enumerate(body.get("system", [])):
        if "cache_control" in block:
            found.append(("system", i))
    for m, message in enumerate(body["messages"]):
        for b, block in enumerate(message["content"]):
            if "cache_control" in block:
                found.append((m, b))
    return found


def test_system_and_tail_are_marked_and_short_prefixes_skipped():
    planner = CachePlanner(OPUS)
    req = request([Message.user("hi")])
    req.cache = planner.plan(req.body())
    body = render(req)
    # The two tools are ~20 tokens, under Opus 4.8's 1024 minimum: no breakpoint there.
    assert breakpoints(body) == [("system", 0), (0, 0)]
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}


def test_one_hour_ttl_is_written_on_every_breakpoint():
    planner = CachePlanner(OPUS, ttl="1h")
    req = request([Message.user("hi " + BIG)])
    req.cache = planner.plan(req.body())
    body = render(req)
    assert body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_marking_never_touches_the_conversation():
    messages = [Message.user("hi " + BIG)]
    before = dumps([m.to_wire() for m in messages])
    req = request(messages)
    req.cache = CachePlanner(OPUS).plan(req.body())
    render(req)
    assert dumps([m.to_wire() for m in messages]) == before


def test_a_turn_that_adds_more_than_the_lookback_gets_intermediate_breakpoints():
    planner = CachePlanner(OPUS)
    messages = [Message.user("start " + BIG)]
    first = request(messages)
    first.cache = planner.plan(first.body())
    messages.append(Message("assistant", [TextBlock(f"t{i}") for i in range(30)]))
    messages.append(Message.user("next"))
    second = request(messages)
    second.cache = planner.plan(second.body())
    points = second.cache.breakpoints
    assert len(points) <= 4
    tail = points[-1]
    messages_points = [p for p in points if p >= 3]  # 2 tools + 1 system block before messages
    assert len(messages_points) >= 2, points
    assert all(b - a < 20 for a, b in zip((3, *messages_points), messages_points, strict=False))
    assert tail == 2 + 1 + 1 + 30 + 1 - 1


def test_thinking_blocks_are_never_marked():
    planner = CachePlanner(OPUS)
    messages = [Message.user("q " + BIG), Message("assistant", [ThinkingBlock("t", "s")])]
    req = request(messages)
    req.cache = planner.plan(req.body())
    assert "cache_control" not in render(req)["messages"][1]["content"][0]


def test_the_monitor_explains_a_miss():
    planner, monitor = CachePlanner(OPUS), CacheMonitor()
    messages = [Message.user("hi " + BIG)]
    req = request(messages)
    plan = planner.plan(req.body())
    written = Usage(input_tokens=3, cache_creation_input_tokens=3000)
    assert monitor.explain(plan, written, now=0.0) is None
    changed = MessagesRequest("claude-opus-4-8", 1000, messages, system=[TextBlock("other " + BIG)],
                              tools=req.tools)
    plan2 = planner.plan(changed.body())
    assert "system prompt changed" in monitor.explain(plan2, Usage(input_tokens=3000), now=1.0)
    plan3 = planner.plan(changed.body())
    assert "expired" in monitor.explain(plan3, Usage(input_tokens=3000), now=1000.0)
    plan4 = planner.plan(request(messages, tools=False).body())
    assert "tools changed" in monitor.explain(plan4, Usage(input_tokens=3000), now=1001.0)


def test_the_json_sent_is_the_rendered_body_with_unmarked_messages_written_once():
    planner = CachePlanner(OPUS)
    conversation = [Message.user("first " + BIG), Message("assistant", [TextBlock("ok")]), Message.user("next")]
    req = request(conversation)
    req.cache = planner.plan(req.body())
    assert json.loads(render_json(req, stream=True)) == {**render(req), "stream": True}
    assert conversation[0].to_json() == dumps(conversation[0].to_wire())  # cached, and the same text
    assert "cache_control" not in conversation[2].to_json()  # the marked tail was written from a copy
    assert "cache_control" in json.loads(render_json(req))["messages"][2]["content"][0]
