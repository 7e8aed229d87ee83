import json

import pytest

from tether.api import stream as st
from tether.api.types import TextBlock, ThinkingBlock, ToolUseBlock
from tether.errors import APIConnectionError, APIStatusError


def sse(*events: dict) -> list[bytes]:
    """One chunk per event, as a server writing each event as it happens would send them."""
    return [f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode() for data in events]


START = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                              "content": [], "model": "claude-opus-4-8", "stop_reason": None,
                                              "usage": {"input_tokens": 10, "output_tokens": 1}}}


def feed(chunks):
    reader = st.StreamReader()
    return reader, [e for chunk in chunks for e in reader.feed(chunk)]


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
    reader.feed(sse(START)[0])
    with pytest.raises(APIStatusError) as info:
        reader.feed(sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})[0])
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


TEXT = [
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " there"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
    {"type": "message_stop"},
]


def test_deltas_that_arrive_together_come_out_as_one():
    body = b"".join(sse(START, *TEXT))
    _, events = feed([body])
    assert [type(e).__name__ for e in events] == ["MessageStart", "BlockStart", "TextDelta", "BlockStop",
                                                  "MessageComplete"]
    assert events[2].text == "Hello there" and events[-1].response.content == [TextBlock("Hello there")]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_a_body_cut_anywhere_and_with_crlf_line_ends_reads_the_same(size):
    body = b"".join(sse(START, *TEXT)).replace(b"\n", b"\r\n")
    _, events = feed([body[i:i + size] for i in range(0, len(body), size)])
    text = "".join(e.text for e in events if isinstance(e, st.TextDelta))
    assert text == "Hello there" and events[-1].response.content == [TextBlock("Hello there")]
    assert sum(isinstance(e, st.MessageStart) for e in events) == 1


def test_an_event_cut_off_at_the_end_of_the_body_is_not_dispatched():
    reader, events = feed([b"".join(sse(START, *TEXT))[:-2]])  # message_stop without its blank line
    assert not any(isinstance(e, st.MessageComplete) for e in events)
    with pytest.raises(APIConnectionError, match="before message_stop"):
        reader.check_complete()


def test_an_error_event_after_other_events_of_its_chunk_comes_after_them():
    reader = st.StreamReader()
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    events = reader.feed(b"".join(sse(START, *TEXT[:2], error)))
    assert [type(e).__name__ for e in events] == ["MessageStart", "BlockStart", "TextDelta"]
    with pytest.raises(APIStatusError, match="overloaded_error"):
        reader.check_complete()


def test_data_split_over_lines_comments_other_fields_and_no_space_after_the_colon_read_as_sse_says():
    body = b"".join([
        b": a comment, ignored\n\n",
        b"event: message_start\nid: 1\ndata:" + json.dumps(START).encode() + b"\n\n",
        b"event: content_block_start\ndata: {\"type\": \"content_block_start\",\nretry: 10\n"
        b"data: \"index\": 0, \"content_block\": {\"type\": \"text\", \"text\": \"\"}}\n\n",
        b"event: ping\n\n",  # no data: nothing to dispatch
        *sse(*TEXT[1:]),
    ])
    for chunks in ([body], [body[:40], body[40:]]):
        _, events = feed(chunks)
        assert [type(e).__name__ for e in events][:2] == ["MessageStart", "BlockStart"]
        assert events[-1].response.content == [TextBlock("Hello there")]


def _pieces(index: int, kind: str, field: str, *pieces: str) -> list[dict]:
    return [{"type": "content_block_delta", "index": index, "delta": {"type": kind, field: p}} for p in pieces]


TRICKY = [  # escapes, quotes, non-ASCII and backslashes at the edges of pieces
    START,
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
    *_pieces(0, "thinking_delta", "thinking", "a \"quoted\" ", "thought\\", "\\n ☃ 😀"),
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    *_pieces(1, "text_delta", "text", "tab\there, ", "é\u2028", "\\", "\"end\"\n"),
    {"type": "content_block_stop", "index": 1},
    {"type": "content_block_start", "index": 2,
     "content_block": {"type": "tool_use", "id": "toolu_1", "name": "editor", "input": {}}},
    *_pieces(2, "input_json_delta", "partial_json", "", '{"path": "a\\\\b.py", "file_text": "x = \\"', 'é\\"\\n', '"}'),
    {"type": "content_block_stop", "index": 2},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
    {"type": "message_stop"},
]
TRICKY_CONTENT = [ThinkingBlock('a "quoted" thought\\\\n ☃ 😀', ""), TextBlock('tab\there, é\u2028\\"end"\n'),
                  ToolUseBlock("toolu_1", "editor", {"path": "a\\b.py", "file_text": 'x = "é"\n'})]


@pytest.mark.parametrize("form", ["as the API writes them", "spaced", "ASCII-escaped", "with a field more"])
def test_deltas_read_the_same_whichever_way_their_json_is_written(form):
    def frame(data: dict) -> bytes:
        if form == "with a field more" and data["type"] == "content_block_delta":
            data = {**data, "delta": {**data["delta"], "extra": "x\"}}"}}
        text = json.dumps(data, ensure_ascii=form == "ASCII-escaped",
                          separators=(", ", ": ") if form == "spaced" else (",", ":"))
        return f"event: {data['type']}\ndata: {text}\n\n".encode()

    body = b"".join(frame(data) for data in TRICKY)
    for chunks in ([body], [body[i:i + 5] for i in range(0, len(body), 5)]):
        _, events = feed(chunks)
        assert events[-1].response.content == TRICKY_CONTENT
        partial = "".join(e.partial_json for e in events if isinstance(e, st.InputJsonDelta))
        assert partial == '{"path": "a\\\\b.py", "file_text": "x = \\"é\\"\\n"}'


def test_what_orjson_refuses_is_read_by_json_and_a_tool_inputs_big_integer_stays_exact():
    big = 2**70
    _, events = feed([b"".join(sse(
        START,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "half \ud800 a pair"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "toolu_1", "name": "count", "input": {}}},
        {"type": "content_block_delta", "index": 1,
         "delta": {"type": "input_json_delta", "partial_json": json.dumps({"n": big})}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_stop"},
    ))])
    assert events[-1].response.content == [TextBlock("half \ud800 a pair"), ToolUseBlock("toolu_1", "count", {"n": big})]
    with pytest.raises(ValueError):
        st.StreamReader().feed(b'data: {"type": "message_start", "message": {\n\n')
