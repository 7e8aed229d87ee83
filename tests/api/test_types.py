import dataclasses
import datetime
import json

import pytest

from tether.api.types import (
    Message,
    MessagesRequest,
    RawBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
    block_from_wire,
    compact_encoder,
    dumps,
    messages_from_json,
    messages_to_json,
)

WIRE_MESSAGES = [
    {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]},
    {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "let me see", "signature": "EqQBCkYIBxgCKkD+/=="},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"},
        {"type": "text", "text": "ok", "citations": [{"type": "char_location", "cited_text": "x",
                                                      "document_index": 0, "start_char_index": 0,
                                                      "end_char_index": 1}]},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
        {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "ls"},
         "caller": {"type": "direct"}},
    ]},
    {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
            {"type": "text", "text": "a.txt"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        ], "is_error": False},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}, "title": "t"},
    ]},
]


def test_a_conversation_read_back_from_json_is_byte_identical_on_the_wire():
    messages = [Message.from_wire(m) for m in WIRE_MESSAGES]
    assert dumps([m.to_wire() for m in messages]) == dumps(WIRE_MESSAGES)
    again = messages_from_json(messages_to_json(messages))
    assert messages_to_json(again) == messages_to_json(messages) == dumps(WIRE_MESSAGES)


def test_blocks_are_typed_and_unknown_ones_pass_through_whole():
    blocks = Message.from_wire(WIRE_MESSAGES[1]).content
    assert isinstance(blocks[0], ThinkingBlock) and blocks[0].signature == "EqQBCkYIBxgCKkD+/=="
    assert isinstance(blocks[3], RawBlock) and blocks[3].type == "server_tool_use"
    assert isinstance(blocks[5], ToolUseBlock) and blocks[5].extra == {"caller": {"type": "direct"}}
    result = Message.from_wire(WIRE_MESSAGES[2]).content[0]
    assert isinstance(result, ToolResultBlock) and isinstance(result.content[0], TextBlock)


def test_a_string_content_becomes_a_text_block():
    assert Message.from_wire({"role": "user", "content": "hello"}).content == [TextBlock("hello")]
    assert block_from_wire({"type": "text", "text": "x"}).to_wire() == {"type": "text", "text": "x"}


def test_usage_reads_the_cache_split_and_adds_up():
    usage = Usage.from_wire({"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
                             "cache_creation_input_tokens": 50,
                             "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 30}})
    assert (usage.cache_write_5m_tokens, usage.cache_write_1h_tokens) == (20, 30)
    assert usage.prompt_tokens == 160
    assert (usage + usage).cache_write_1h_tokens == 60


def test_request_body_keeps_key_order_and_extra_params():
    request = MessagesRequest("claude-opus-4-8", 1000, [Message.user("hi")], system=[TextBlock("be brief")],
                              params={"metadata": {"user_id": "u"}})
    body = request.body()
    assert list(body) == ["model", "max_tokens", "system", "messages", "metadata"]
    assert "max_tokens" not in request.count_body()
    json.dumps(body)


def json_compact(value, sort_keys=False):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)


def test_dumps_writes_what_json_writes_and_leaves_to_json_what_orjson_refuses():
    deep: list = []
    for _ in range(300):  # past orjson's 255 levels
        deep = [deep]
    same = [WIRE_MESSAGES, {"é": "ü 日本 \u2028 \x00 \"q\" \\"}, -0.0, 0.1, 1e16, 2**63 - 1, -(2**63), True, None, (1, 2),
            2**70, {"n": -(2**70)}, "half \ud800 a pair", {1: "a"}, deep]
    for value in same:
        assert dumps(value) == json_compact(value)
    sorted_json = compact_encoder(sort_keys=True)
    for value in [{"b": 1, "a": {"d": 2, "c": 3}, "é": 0, "z": 2**70}, WIRE_MESSAGES]:
        assert sorted_json(value) == json_compact(value, sort_keys=True)


def test_dumps_differs_from_json_only_in_a_floats_exponent_and_what_json_has_no_word_for():
    assert dumps([1e-7, 1.5e300]) == "[1e-7,1.5e+300]"  # json: 1e-07: the same number
    assert json.loads(dumps([1e-7, 1.5e300])) == [1e-7, 1.5e300]
    assert dumps([float("nan"), float("inf")]) == "[null,null]"  # json: NaN, Infinity, which the API refuses
    for value in ({1, 2}, dataclasses.make_dataclass("D", ["x"])(1), datetime.datetime(2026, 1, 1)):
        with pytest.raises(TypeError):
            dumps(value)  # json's refusal, as before
