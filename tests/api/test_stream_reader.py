import json

import pytest

from tether.api import stream as st
from tether.api.types import TextBlock, ThinkingBlock, ToolUseBlock
from tether.errors import APIConnectionError, APIStatusError


def sse(*events: dict) -> list[str]:
    lines = []
    for data in events:
        lines += [f"event: {data['type']}", f"data: {json.dumps(data)}", ""]
    return lines


START = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                              "content": [], "model": "claude-opus-4-8", "stop_reason": None,
                                              "usage": {"input_tokens": 10, "output_tokens": 1}}}


def feed(lines):
    reader = st.StreamReader()
    return reader, [e for line in lines if (e := reader.feed_line(line)) is not None]


def test_blocks_accumulate_from_their_deltas():
    lines = sse(
        START, {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig=="}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hel"}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "lo"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2,
         "content_block": {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {}}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"comm'}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": 'and": "ls"}'}},
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 42}},
        {"type": "future_event_type"},
        {"type": "message_stop"},
    )
    reader, events = feed(lines)
    response = events[-1].response
    assert response.content == [ThinkingBlock("hmm", "sig=="), TextBlock("Hello"),
                                 ToolUseBlock("toolu_1", "bash", {"command": "ls"})]
    assert response.stop_reason == "tool_use" and response.usage.output_tokens == 42
    assert response.usage.input_tokens == 10
    assert [type(e).__name__ for e in events].count("TextDelta") == 2
    reader.check_complete()


def test_an_error_event_raises_with_status_200():
    reader = st.StreamReader(request_id="req_1")
    for line in sse(START):
        reader.feed_line(line)
    with pytest.raises(APIStatusError) as info:
        for line in sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}):
            reader.feed_line(line)
    assert info.value.status_code == 200 and info.value.error_type == "overloaded_error"
    assert info.value.retryable and info.value.request_id == "req_1"


def test_a_stream_cut_before_message_stop_is_a_connection_error():
    reader, _ = feed(sse(START))
    with pytest.raises(APIConnectionError, match="before message_stop"):
        reader.check_complete()


def test_a_tool_call_cut_by_max_tokens_is_dropped():
    _, events = feed(sse(
        START,
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"comm'}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    ))
    assert events[-1].response.content == []
