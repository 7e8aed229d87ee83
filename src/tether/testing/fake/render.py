"""An ``Output`` as the API sends it: one Message JSON, or the SSE event sequence (reference §3).

The stream is ``message_start`` (usage in full, ``output_tokens: 1``), one ``ping``, then per block
``content_block_start`` / deltas / ``content_block_stop``, then ``message_delta`` with the cumulative
usage and ``message_stop``. Text and thinking arrive in pieces of random length; a tool's input
arrives as ``input_json_delta`` fragments cut at random places, the first sometimes empty; a
thinking block ends with its ``signature_delta``; any other block arrives whole in its start event.
Events come framed for SSE (``wire.sse_frame``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from json.encoder import encode_basestring
from typing import Any

from tether.api.types import dumps
from tether.testing.fake.output import Output
from tether.testing.fake.turns import Block
from tether.testing.fake.wire import sse_frame

TOOL_BLOCKS = {"tool_use", "server_tool_use"}
Event = tuple[str, str]  # the event's SSE frame, and the output text it carries ("" if none)
PING = sse_frame({"type": "ping"})


@dataclass(frozen=True, slots=True)
class Pieces:
    """Sizes, in characters, of the text and JSON pieces a stream is cut into."""

    text_min: int = 8
    text_max: int = 64
    json_mean: int = 24
    empty_first_json: float = 0.3  # how often a tool's first input_json_delta is ""


def usage(cache: Mapping[str, Any], output: Output) -> dict[str, Any]:
    result = {**cache, "output_tokens": output.output_tokens}
    if output.thinking_tokens:
        result["output_tokens_details"] = {"thinking_tokens": output.thinking_tokens}
    if output.server_tool_use:
        result["server_tool_use"] = output.server_tool_use
    return result


def message(shell: Mapping[str, Any], output: Output, cache: Mapping[str, Any]) -> dict[str, Any]:
    """The complete (non-streaming) Message."""
    return {
        **shell,
        "content": output.content,
        "stop_reason": output.stop_reason,
        "stop_sequence": output.stop_sequence,
        "stop_details": output.stop_details,
        "usage": {**usage(cache, output), "service_tier": "standard"},
    }


def events(
    shell: Mapping[str, Any], output: Output, cache: Mapping[str, Any], rng: random.Random, pieces: Pieces
) -> Iterator[Event]:
    start_usage = {**cache, "output_tokens": 1, "service_tier": "standard"}
    start = {**shell, "content": [], "stop_reason": None, "stop_sequence": None, "stop_details": None}
    yield sse_frame({"type": "message_start", "message": {**start, "usage": start_usage}}), ""
    yield PING, ""
    for index, block in enumerate(output.content):
        yield from _block_events(index, block, rng, pieces)
    delta = {
        "stop_reason": output.stop_reason,
        "stop_sequence": output.stop_sequence,
        "stop_details": output.stop_details,
    }
    yield sse_frame({"type": "message_delta", "delta": delta, "usage": usage(cache, output)}), ""
    yield sse_frame({"type": "message_stop"}), ""


def _block_events(index: int, block: Block, rng: random.Random, pieces: Pieces) -> Iterator[Event]:
    kind = block["type"]
    if kind == "text":
        yield from _text_events(index, block, rng, pieces)
    elif kind == "thinking":
        yield _start(index, {"type": "thinking", "thinking": "", "signature": ""})
        yield from _pieces(_delta_head(index, "thinking_delta", "thinking"), block["thinking"], rng, pieces)
        yield _delta(_delta_head(index, "signature_delta", "signature"), block["signature"]), ""
    elif kind in TOOL_BLOCKS:
        yield _start(index, {**block, "input": {}})
        head = _delta_head(index, "input_json_delta", "partial_json")
        yield from [(_delta(head, f), f) for f in _json_fragments(dumps(block["input"]), rng, pieces)]
    else:  # redacted_thinking, server tool results, ...: whole in the start event
        yield _start(index, block)
    yield sse_frame({"type": "content_block_stop", "index": index}), ""


def _text_events(index: int, block: Block, rng: random.Random, pieces: Pieces) -> Iterator[Event]:
    citations = block.get("citations")
    head = {k: v for k, v in block.items() if k not in ("text", "citations")}
    yield _start(index, {**head, "text": "", **({"citations": []} if citations else {})})
    for citation in citations or ():
        delta = {"type": "citations_delta", "citation": citation}
        yield sse_frame({"type": "content_block_delta", "index": index, "delta": delta}), ""
    yield from _pieces(_delta_head(index, "text_delta", "text"), block["text"], rng, pieces)


def _start(index: int, content_block: Mapping[str, Any]) -> Event:
    return sse_frame({"type": "content_block_start", "index": index, "content_block": content_block}), ""


def _delta_head(index: int, kind: str, field: str) -> str:
    """The frame of ``{"type": "content_block_delta", "index": index, "delta": {"type": kind, field:
    value}}`` up to the value, written out (``_delta`` adds the value): these are nearly all of a
    stream's events, and the JSON encoder costs several times more than this (``sse_frame`` gives
    the same bytes; a test holds them equal). A block's deltas share one head."""
    return (
        f'event: content_block_delta\ndata: {{"type":"content_block_delta","index":{index},'
        f'"delta":{{"type":"{kind}","{field}":'
    )


def _delta(head: str, value: str) -> str:
    return f"{head}{encode_basestring(value)}}}}}\n\n"


def _pieces(head: str, value: str, rng: random.Random, pieces: Pieces) -> Iterator[Event]:
    """The deltas of ``value`` in pieces of random length, each drawn as its event is taken."""
    position, least, span = 0, pieces.text_min, pieces.text_max - pieces.text_min + 1
    while position < len(value):
        size = least + int(rng.random() * span)  # randint's distribution, at under half its cost
        piece = value[position : position + size]
        yield _delta(head, piece), piece
        position += size


def _json_fragments(value: str, rng: random.Random, pieces: Pieces) -> list[str]:
    """``value`` cut at random character positions (drawn with ``rng.random``: ``rng.sample`` took
    several times longer); the first fragment is sometimes empty."""
    count, last = len(value) // max(1, pieces.json_mean), len(value) - 1
    cuts = sorted({1 + int(rng.random() * last) for _ in range(count)}) if last > 0 else []
    bounds = [0, *cuts, len(value)]
    fragments = [value[a:b] for a, b in pairwise(bounds)]
    if rng.random() < pieces.empty_first_json:
        fragments.insert(0, "")
    return fragments
