"""Reading a Messages API stream: Server-Sent Events in, typed events and a final ``Response`` out.

``StreamReader`` is plain code with no I/O: feed it the HTTP body in chunks as they arrive and it
returns the typed events each chunk completes. It reads the wire itself (one JSON decode per
chunk, by orjson) instead of building the SDK's per-event objects, and accumulates each block as its
deltas arrive. Deltas of one block that arrive in the same chunk come out as one delta: the text is the
same, and a consumer pays for one event instead of dozens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

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
    """Turns an SSE body into ``StreamEvent`` objects. Raises on ``event: error`` and on a cut stream."""

    def __init__(self, *, request_id: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        self.request_id = request_id
        self.headers = headers or {}
        self._buffer = b""
        self._blocks: dict[int, _Open] = {}
        self._done: list[ContentBlock | None] = []
        self._message: dict[str, Any] = {}
        self._usage = Usage()
        self._stop: dict[str, Any] = {}
        self._error: APIStatusError | None = None  # an error event that came after events of its chunk
        self.complete = False

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        """The events that ``chunk`` completes, consecutive deltas of one block joined."""
        self._raise_pending()
        if self.complete:
            return []
        buffer = self._buffer + chunk
        if b"\r" in buffer:  # CRLF or CR line ends; a CR at the very end may be half of a CRLF
            keep = buffer.endswith(b"\r")
            buffer = buffer[:-1] if keep else buffer
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if keep else b"")
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self._buffer = buffer
            return []
        self._buffer = buffer[end + 2:]
        events: list[StreamEvent] = []
        run: list[str] = []  # the pieces of consecutive deltas of one kind and block
        run_field, run_index = "", -1
        for data in _decode(b"[%b]" % b",".join(_datas(buffer[:end]))):  # one decode for the whole chunk
            if self.complete:
                break  # nothing comes after message_stop
            delta = data.get("delta") if data.get("type") == "content_block_delta" else None
            if delta is not None and (field := _PIECES.get(delta["type"])):
                index = data["index"]
                if index != run_index or field != run_field:
                    self._end_run(events, run_field, run_index, run)
                    run, run_field, run_index = [], field, index
                run.append(delta[field])
                continue
            if run:
                self._end_run(events, run_field, run_index, run)
                run, run_field, run_index = [], "", -1
            try:
                event = self.handle(data)
            except APIStatusError as exc:  # an error event: what came before it still comes first
                if not events:
                    raise
                self._error = exc
                break
            if event is not None:
                events.append(event)
        self._end_run(events, run_field, run_index, run)
        return events

    def _end_run(self, events: list[StreamEvent], field: str, index: int, pieces: list[str]) -> None:
        """The delta event of a run of ``pieces`` of one block's ``field``, its text kept for the block."""
        if pieces:
            text = "".join(pieces)
            self._blocks[index].pieces.append(text)
            events.append(TextDelta(index, text) if field == "text" else
                          ThinkingDelta(index, text) if field == "thinking" else InputJsonDelta(index, text))

    def handle(self, data: dict[str, Any]) -> StreamEvent | None:
        kind = data.get("type")
        if kind == "content_block_delta":
            self._delta(data["index"], data["delta"])
            return None
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

    def _delta(self, index: int, delta: Mapping[str, Any]) -> None:
        """A delta that is not text: the signature of a thinking block, or a citation."""
        block = self._blocks[index]
        if delta["type"] == "signature_delta":
            block.signature += delta["signature"]
        elif delta["type"] == "citations_delta":
            block.citations.append(delta["citation"])

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

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def check_complete(self) -> None:
        self._raise_pending()
        if not self.complete:
            raise APIConnectionError("the stream ended before message_stop (connection closed mid-stream)")




_DATA_LINE = re.compile(rb"^data: ?(.*)", re.MULTILINE)
_LAST_DATA_LINE = re.compile(rb"\ndata: ?([^\n]*)(?=\n\n|\Z)")  # a data line that ends its event


def _decode(payload: bytes) -> Any:
    """The events' JSON, read by orjson (43 µs for a turn's chunk of ~12 KB, json 102), or by json
    what orjson refuses (a lone surrogate escape, NaN), which json reads or says why not. orjson
    reads an integer past 64 bits as a float: the events' own integers are indexes and token counts,
    and a tool call's input, which holds whatever the model wrote, is read by json (``_Open``)."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return json.loads(payload)


def _datas(events: bytes) -> list[bytes]:
    """The data of each event in ``events`` (blank-line separated, ``\\n`` line ends). The API sends
    one data line per event, last in it: when every data line is the last line of its event, one
    regex over the chunk finds them all."""
    lined = b"\n" + events
    if len(datas := _LAST_DATA_LINE.findall(lined)) == lined.count(b"\ndata:"):
        return datas
    datas = []
    for event in events.split(b"\n\n"):
        if lines := _DATA_LINE.findall(event):
            datas.append(b"\n".join(lines))
    return datas


_PIECES = {"text_delta": "text", "input_json_delta": "partial_json", "thinking_delta": "thinking"}
