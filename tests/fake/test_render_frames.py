"""The stream's delta events are framed by hand (they are nearly all of its events): the same bytes
as the generic ``sse_frame``. And the ids the fake gives out."""

from __future__ import annotations

import json

import pytest

from tether.testing.fake.render import _delta, _delta_head
from tether.testing.fake.wire import ALPHABET, Ids, sse_frame

TRICKY = [
    "",
    "plain",
    'quote " and \\ backslash',
    "line\nbreak\ttab\r\x00\x1f\x7f",
    "é€😀 \u2028\u2029",
    "\ud800",
    "}}]",
]


@pytest.mark.parametrize("value", TRICKY)
@pytest.mark.parametrize(
    ("kind", "field"),
    [("text_delta", "text"), ("thinking_delta", "thinking"), ("input_json_delta", "partial_json")],
)
def test_a_delta_frame_is_what_sse_frame_gives(kind: str, field: str, value: str) -> None:
    data = {"type": "content_block_delta", "index": 12, "delta": {"type": kind, field: value}}
    frame = _delta(_delta_head(12, kind, field), value)
    assert frame == sse_frame(data)
    assert json.loads(frame.split("\ndata: ", 1)[1]) == data


def test_ids_look_like_the_apis_and_replay_from_their_seed():
    made = [(ids.message(), ids.tool_use(), ids.server_tool_use(), ids.request()) for ids in (Ids(7), Ids(7))]
    assert made[0] == made[1]
    for value, prefix, length in zip(made[0], ("msg_01", "toolu_01", "srvtoolu_01", "req_011C"), (28, 30, 33, 28),
                                     strict=True):
        assert value.startswith(prefix) and len(value) == length
        assert set(value.removeprefix(prefix)) <= set(ALPHABET)
    ids = Ids(3)
    assert len({ids.tool_use() for _ in range(1000)}) == 1000
