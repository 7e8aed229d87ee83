"""Streaming (reference §3, §9.2): named events, order, usage, deltas, and the SDK's view of them."""

from __future__ import annotations

import json

import httpx2

from tether.api.tokens import block_tokens
from tether.testing import FakeAPI, Turn, redacted_thinking, server_tool_use, text, thinking, tool_use

MODEL = "claude-opus-4-8"
USER = [{"role": "user", "content": "Hello there"}]
SEARCH_RESULT = {
    "type": "web_search_tool_result",
    "tool_use_id": "srvtoolu_01A",
    "content": [
        {
            "type": "web_search_result",
            "url": "https://example.com",
            "title": "Example",
            "encrypted_content": "x",
        }
    ],
}


def test_every_event_line_names_its_data_type_and_order_is_canonical(fake: FakeAPI, key, raw_stream):
    fake.script(
        [Turn([thinking("Let me think."), text("Hi!"), tool_use("get_weather", {"city": "Paris"})])], key=key
    )
    events = raw_stream()
    assert all(name == data["type"] for name, data in events)
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    body = names[2:-2]
    starts = [i for i, n in enumerate(body) if n == "content_block_start"]
    stops = [i for i, n in enumerate(body) if n == "content_block_stop"]
    assert len(starts) == len(stops) == 3
    assert all(a < b for a, b in zip(starts, stops, strict=True))
    assert set(body) <= {"content_block_start", "content_block_delta", "content_block_stop"}


def test_message_start_has_full_usage_with_cache_creation_split(fake: FakeAPI, key, raw_stream):
    fake.script(["Hi"], key=key)
    start = raw_stream()[0][1]["message"]
    assert start["id"].startswith("msg_")
    assert start["content"] == [] and start["stop_reason"] is None and start["stop_sequence"] is None
    usage = start["usage"]
    assert set(usage) >= {
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
    }
    assert usage["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    assert usage["output_tokens"] == 1


def test_message_delta_usage_is_cumulative_and_counts_the_blocks(fake: FakeAPI, key, raw_stream):
    blocks = [text("The answer is 42, and here is why."), tool_use("calc", {"expr": "6*7"}, id="toolu_01X")]
    fake.script([Turn(blocks)], key=key)
    events = raw_stream()
    delta = next(data for name, data in events if name == "message_delta")
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None, "stop_details": None}
    assert delta["usage"]["output_tokens"] == sum(block_tokens(b) for b in blocks)
    assert delta["usage"]["input_tokens"] == events[0][1]["message"]["usage"]["input_tokens"]


def test_thinking_streams_deltas_then_signature_before_stop(fake: FakeAPI, key, raw_stream):
    fake.script([Turn([thinking("First I consider the options. " * 10), text("Done.")])], key=key)
    events = raw_stream()
    mine = [data for _, data in events if data.get("index") == 0]
    assert mine[0]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    kinds = [d["delta"]["type"] for d in mine if d["type"] == "content_block_delta"]
    assert kinds[-1] == "signature_delta" and set(kinds[:-1]) == {"thinking_delta"} and len(kinds) > 2
    assert mine[-1]["type"] == "content_block_stop"
    assert (
        "".join(d["delta"].get("thinking", "") for d in mine[1:-1]) == "First I consider the options. " * 10
    )


def test_tool_input_arrives_as_json_fragments_that_reassemble(fake: FakeAPI, key, raw_stream):
    tool_input = {
        "path": "src/app/main.py",
        "old_str": "def f():\n    return 1\n",
        "new_str": "def f():\n    return 2\n",
    }
    fake.script([Turn([tool_use("str_replace_based_edit_tool", tool_input)])] * 30, key=key)
    empty_first = 0
    for _ in range(30):
        events = raw_stream()
        start = next(d for n, d in events if n == "content_block_start")["content_block"]
        assert start["type"] == "tool_use" and start["id"].startswith("toolu_") and start["input"] == {}
        fragments = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
        assert all(d["delta"]["type"] == "input_json_delta" for n, d in events if n == "content_block_delta")
        assert len(fragments) > 3
        assert json.loads("".join(fragments)) == tool_input
        empty_first += fragments[0] == ""
    assert 0 < empty_first < 30


def test_redacted_thinking_and_server_tool_results_arrive_whole(fake: FakeAPI, key, raw_stream):
    blocks = [
        redacted_thinking("opaque"),
        server_tool_use("web_search", {"query": "x"}),
        SEARCH_RESULT,
        text("ok"),
    ]
    fake.script([Turn(blocks)], key=key)
    events = raw_stream()
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert starts[0] == {"type": "redacted_thinking", "data": "opaque"}
    assert starts[1]["type"] == "server_tool_use" and starts[1]["id"].startswith("srvtoolu_")
    assert starts[2] == SEARCH_RESULT
    deltas = {d["index"] for n, d in events if n == "content_block_delta"}
    assert 0 not in deltas and 2 not in deltas and 1 in deltas
    usage = next(d for n, d in events if n == "message_delta")["usage"]
    assert usage["server_tool_use"] == {"web_search_requests": 1, "web_fetch_requests": 0}


def test_sdk_stream_accumulates_the_scripted_turn(fake: FakeAPI, key, client):
    fake.script(
        [Turn([thinking("hmm"), text("Hello, world!"), tool_use("lookup", {"q": [1, 2, {"a": None}]})])],
        key=key,
    )
    with client.messages.stream(model=MODEL, max_tokens=1000, messages=USER) as stream:
        message = stream.get_final_message()
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].signature
    assert message.content[1].text == "Hello, world!"
    assert message.content[2].input == {"q": [1, 2, {"a": None}]}
    assert message.stop_reason == "tool_use"


def test_raw_event_iteration_with_create_stream_true(fake: FakeAPI, key, client):
    fake.script(["one two three"], key=key)
    stream = client.messages.create(model=MODEL, max_tokens=1000, messages=USER, stream=True)
    types = [event.type for event in stream]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert "ping" not in types  # the SDK skips pings


async def test_async_stream(fake: FakeAPI, key, aclient):
    fake.script(["async hello"], key=key)
    async with aclient.messages.stream(model=MODEL, max_tokens=1000, messages=USER) as stream:
        message = await stream.get_final_message()
    assert message.content[0].text == "async hello"


def test_plain_http_client_reads_well_formed_sse_lines(fake: FakeAPI, key, headers):
    fake.script(["A plain client should see plain lines."], key=key)
    body = {"model": MODEL, "max_tokens": 100, "messages": USER, "stream": True}
    lines = []
    with (
        httpx2.Client(base_url=fake.base_url) as http,
        http.stream("POST", "/v1/messages", headers=headers, json=body) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = list(r.iter_lines())
    events = [lines[i : i + 3] for i in range(0, len(lines), 3)]
    for event_line, data_line, blank in events:
        assert event_line.startswith("event: ") and data_line.startswith("data: ") and blank == ""
        assert json.loads(data_line[6:])["type"] == event_line[7:]
    assert events[-1][0] == "event: message_stop"


def test_non_streaming_returns_the_same_message(fake: FakeAPI, key, client):
    turn = Turn([text("same either way"), tool_use("t", {"x": 1}, id="toolu_01SAME")])
    fake.script([turn, turn], key=key)
    created = client.messages.create(model=MODEL, max_tokens=1000, messages=USER)
    with client.messages.stream(model=MODEL, max_tokens=1000, messages=USER) as stream:
        streamed = stream.get_final_message()
    keep = {"content", "stop_reason", "stop_sequence", "stop_details", "usage", "model", "role", "type"}
    assert created.model_dump(include=keep) == streamed.model_dump(include=keep)
