"""Reading a Messages API stream: Server-Sent Events in, typed events and a final ``Response`` out.

``StreamReader`` is plain code with no I/O: feed it the lines of the HTTP body and it returns the
typed events each line completes. It reads the wire itself (one ``json.loads`` per event) instead of
building the SDK's per-event objects, and accumulates each block as ``message_stop`` arrives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tether.api.types import (
    ContentBlock,
    Response,
    TextBlock,
    ThinkingBlock,
    Usage,
    block_from_wire,
)
from tether.errors import APIConnectionError, APIStatusError


@dataclass(slots=True)
class MessageStart:
    id: str
    model: str
    usage: Usage


@dataclass(slots=True)
class BlockStart:
    index: int
    block: ContentBlock


@dataclass(slots=True)
class TextDelta:
    index: int
    text: str


@dataclass(slots=True)
class ThinkingDelta:
    index: int
    thinking: str


@dataclass(slots=True)
class InputJsonDelta:
    index: int
    partial_json: str


@dataclass(slots=True)
class BlockStop:
    index: int
    block: ContentBlock


@dataclass(slots=True)
class MessageComplete:
    response: Response


@dataclass(slots=True)
class StreamRestart:
    """The stream failed after some events and the call is being made again: forget its partial output."""

    attempt: int
    error: str


StreamEvent = (
    MessageStart | BlockStart | TextDelta | ThinkingDelta | InputJsonDelta | BlockStop | MessageComplete
    | StreamRestart
)


class _Open:
    """A block being streamed: its start and the pieces of its deltas."""

    __slots__ = ("citations", "pieces", "signature", "start")

    def __init__(self, start: Mapping[str, Any]) -> None:
        self.start = start
        self.pieces: list[str] = []
        self.signature = ""
        self.citations: list[Any] = []

    def finish(self) -> ContentBlock:
        start, joined = self.start, "".join(self.pieces)
        kind = start["type"]
        if kind == "text":
            citations = self.citations or start.get("citations")
            return TextBlock(start.get("text", "") + joined, citations=citations or None)
        if kind == "thinking":
            return ThinkingBlock(start.get("thinking", "") + joined, self.signature or start.get("signature", ""))
        if kind in ("tool_use", "server_tool_use", "mcp_tool_use") and self.pieces:
            data = {**start, "input": json.loads(joined) if joined.strip() else {}}
            return block_from_wire(data)
        return block_from_wire(start)


class StreamReader:
    """Turns SSE lines into ``StreamEvent`` objects. Raises on ``event: error`` and on a cut stream."""

    def __init__(self, *, request_id: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        self.request_id = request_id
        self.headers = headers or {}
        self._event: str | None = None
        self._data: list[str] = []
        self._blocks: dict[int, _Open] = {}
        self._done: list[ContentBlock | None] = []
        self._message: dict[str, Any] = {}
        self._usage = Usage()
        self._stop: dict[str, Any] = {}
        self.complete = False

    def feed_line(self, line: str) -> StreamEvent | None:
        if line:
            if line.startswith("data:"):
                self._data.append(line[5:].lstrip(" ") if len(line) > 5 else "")
            elif line.startswith("event:"):
                self._event = line[6:].strip()
            return None
        event, data = self._event, self._data
        self._event, self._data = None, []
        if event is None or not data or event == "ping":
            return None
        return self.handle(event, json.loads("\n".join(data)))

    def handle(self, event: str, data: dict[str, Any]) -> StreamEvent | None:
        kind = data.get("type", event)
        if kind == "content_block_delta":
            return self._delta(data["index"], data["delta"])
        if kind == "content_block_start":
            index, block = data["index"], data["content_block"]
            self._blocks[index] = _Open(block)
            return BlockStart(index, block_from_wire(block))
        if kind == "content_block_stop":
            index = data["index"]
            try:
                block = self._blocks.pop(index).finish()
            except ValueError:  # a tool call cut off by max_tokens: its input is not whole JSON
                return None
            self._done.extend([None] * (index + 1 - len(self._done)))
            self._done[index] = block
            return BlockStop(index, block)
        if kind == "message_start":
            self._message = data["message"]
            self._usage.update(self._message.get("usage") or {})
            return MessageStart(self._message["id"], self._message["model"], self._usage)
        if kind == "message_delta":
            self._stop.update(data.get("delta") or {})
            self._usage.update(data.get("usage") or {})
            return None
        if kind == "message_stop":
            self.complete = True
            return MessageComplete(self.response())
        if kind == "error":
            error = data.get("error") or {}
            raise APIStatusError(
                f"the stream failed: {error.get('type')}: {error.get('message')}",
                status_code=200,
                error_type=error.get("type", "api_error"),
                request_id=self.request_id,
            )
        return None  # an event type newer than tether: ignored, as the versioning policy asks

    def _delta(self, index: int, delta: Mapping[str, Any]) -> StreamEvent | None:
        block = self._blocks[index]
        kind = delta["type"]
        if kind == "text_delta":
            block.pieces.append(delta["text"])
            return TextDelta(index, delta["text"])
        if kind == "input_json_delta":
            block.pieces.append(delta["partial_json"])
            return InputJsonDelta(index, delta["partial_json"])
        if kind == "thinking_delta":
            block.pieces.append(delta["thinking"])
            return ThinkingDelta(index, delta["thinking"])
        if kind == "signature_delta":
            block.signature += delta["signature"]
        elif kind == "citations_delta":
            block.citations.append(delta["citation"])
        return None

    def response(self) -> Response:
        content = [b for b in self._done if b is not None]
        return Response(
            id=self._message.get("id", ""),
            model=self._message.get("model", ""),
            content=content,
            stop_reason=self._stop.get("stop_reason"),
            stop_sequence=self._stop.get("stop_sequence"),
            stop_details=self._stop.get("stop_details"),
            usage=self._usage,
            request_id=self.request_id,
            headers=self.headers,
        )

    def partial_blocks(self) -> list[ContentBlock]:
        """The blocks completed so far (for a stream that was cut)."""
        return [b for b in self._done if b is not None]

    def check_complete(self) -> None:
        if not self.complete:
            raise APIConnectionError("the stream ended before message_stop (connection closed mid-stream)")

