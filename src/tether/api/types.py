"""Typed messages of the Messages API, serialised losslessly.

Each content block is a small slotted dataclass with a literal ``type``. ``to_wire()`` gives the
JSON-ready dict the API expects, with keys in a fixed order and fields the API did not send left
out, so ``block_from_wire(b.to_wire()).to_wire() == b.to_wire()`` byte for byte. Keys tether does not
model are kept in ``extra`` and written back after the known ones; block types tether does not model
(server tools, MCP, compaction, ...) are carried whole as ``RawBlock``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from json.encoder import c_make_encoder, encode_basestring
from typing import Any, ClassVar, Literal

import orjson

Json = dict[str, Any]


class _Wire:
    """Shared serialisation: known fields in declaration order, then ``extra``."""

    __slots__ = ()
    _optional: ClassVar[frozenset[str]] = frozenset()

    def to_wire(self) -> Json:
        out: Json = {"type": self.type}  # type: ignore[attr-defined]
        optional = self._optional
        for name in _fields(type(self)):
            value = getattr(self, name)
            if value is None and name in optional:
                continue
            out[name] = _wire_value(value)
        out.update(getattr(self, "extra", None) or {})
        return out

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]):
        names = _fields(cls)
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names and k != "type"}
        return cls(**known, extra=extra or None)  # type: ignore[call-arg]


@functools.cache
def _fields(cls: type) -> tuple[str, ...]:
    """The fields of a block class that ``to_wire`` writes, in order (``dataclasses.fields`` builds
    them anew on every call, about half of a block's ``to_wire``)."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("type", "extra"))


def _wire_value(value: Any) -> Any:
    if isinstance(value, list):
        return [v.to_wire() if hasattr(v, "to_wire") else v for v in value]
    return value


@dataclass(slots=True)
class TextBlock(_Wire):
    text: str
    citations: list[Json] | None = None
    cache_control: Json | None = None
    extra: Json | None = None
    type: Literal["text"] = "text"
    _optional: ClassVar[frozenset[str]] = frozenset({"citations", "cache_control"})


@dataclass(slots=True)
class ThinkingBlock(_Wire):
    thinking: str
    signature: str
    extra: Json | None = None
    type: Literal["thinking"] = "thinking"


@dataclass(slots=True)
class RedactedThinkingBlock(_Wire):
    data: str
    extra: Json | None = None
    type: Literal["redacted_thinking"] = "redacted_thinking"


@dataclass(slots=True)
class ToolUseBlock(_Wire):
    id: str
    name: str
    input: Json
    cache_control: Json | None = None
    extra: Json | None = None
    type: Literal["tool_use"] = "tool_use"
    _optional: ClassVar[frozenset[str]] = frozenset({"cache_control"})


@dataclass(slots=True)
class ImageBlock(_Wire):
    source: Json
    cache_control: Json | None = None
    extra: Json | None = None
    type: Literal["image"] = "image"
    _optional: ClassVar[frozenset[str]] = frozenset({"cache_control"})


@dataclass(slots=True)
class DocumentBlock(_Wire):
    source: Json
    title: str | None = None
    context: str | None = None
    citations: Json | None = None
    cache_control: Json | None = None
    extra: Json | None = None
    type: Literal["document"] = "document"
    _optional: ClassVar[frozenset[str]] = frozenset({"title", "context", "citations", "cache_control"})


@dataclass(slots=True)
class ToolResultBlock(_Wire):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock | DocumentBlock | RawBlock]
    is_error: bool | None = None
    cache_control: Json | None = None
    extra: Json | None = None
    type: Literal["tool_result"] = "tool_result"
    _optional: ClassVar[frozenset[str]] = frozenset({"is_error", "cache_control"})

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ToolResultBlock:
        block = _Wire.from_wire.__func__(cls, data)  # type: ignore[attr-defined]
        if isinstance(block.content, list):
            block.content = [block_from_wire(b) for b in block.content]
        return block


@dataclass(slots=True)
class RawBlock:
    """A block tether passes through untouched (server tools, MCP, compaction, future types)."""

    data: Json

    @property
    def type(self) -> str:
        return self.data["type"]

    def to_wire(self) -> Json:
        return self.data

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RawBlock:
        return cls(dict(data))


ContentBlock = (
    TextBlock
    | ThinkingBlock
    | RedactedThinkingBlock
    | ToolUseBlock
    | ToolResultBlock
    | ImageBlock
    | DocumentBlock
    | RawBlock
)

_BLOCKS: dict[str, Any] = {
    "text": TextBlock,
    "thinking": ThinkingBlock,
    "redacted_thinking": RedactedThinkingBlock,
    "tool_use": ToolUseBlock,
    "tool_result": ToolResultBlock,
    "image": ImageBlock,
    "document": DocumentBlock,
}


def block_from_wire(data: Mapping[str, Any]) -> ContentBlock:
    return _BLOCKS.get(data["type"], RawBlock).from_wire(data)


Role = Literal["user", "assistant", "system"]


@dataclass(slots=True)
class Message:
    """One message. Treat it as immutable once it is in a conversation: its wire form is cached."""

    role: Role
    content: list[ContentBlock]
    _wire: Json | None = field(default=None, repr=False, compare=False)
    _json: str | None = field(default=None, repr=False, compare=False)

    def to_wire(self) -> Json:
        if self._wire is None:
            self._wire = {"role": self.role, "content": [b.to_wire() for b in self.content]}
        return self._wire

    def to_json(self) -> str:
        """``dumps(self.to_wire())``, written once."""
        if self._json is None:
            self._json = dumps(self.to_wire())
        return self._json

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Message:
        content = data["content"]
        if isinstance(content, str):
            return cls(data["role"], [TextBlock(content)])
        return cls(data["role"], [block_from_wire(b) for b in content])

    @classmethod
    def user(cls, text: str) -> Message:
        return cls("user", [TextBlock(text)])

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    @property
    def tool_uses(self) -> list[ToolUseBlock]:
        return [b for b in self.content if isinstance(b, ToolUseBlock)]


@dataclass(slots=True)
class Usage:
    """Token counts of one response. ``input_tokens`` is the uncached remainder only."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Usage:
        usage = cls()
        usage.update(data)
        return usage

    def update(self, data: Mapping[str, Any]) -> None:
        """Overwrite with the (cumulative) values of a ``message_start`` or ``message_delta``."""
        for name in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
            value = data.get(name)
            if value is not None:
                setattr(self, name, value)
        split = data.get("cache_creation")
        if split:
            self.cache_write_5m_tokens = split.get("ephemeral_5m_input_tokens") or 0
            self.cache_write_1h_tokens = split.get("ephemeral_1h_input_tokens") or 0
        elif data.get("cache_creation_input_tokens") is not None:
            self.cache_write_5m_tokens = self.cache_creation_input_tokens
            self.cache_write_1h_tokens = 0

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, name) + getattr(other, name) for name in Usage.__slots__))

    def to_dict(self) -> Json:
        return dataclasses.asdict(self)


StopReason = Literal[
    "end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal",
    "model_context_window_exceeded", "compaction",
]


@dataclass(slots=True)
class Response:
    """One assistant message as the API returned it."""

    id: str
    model: str
    content: list[ContentBlock]
    stop_reason: str | None
    usage: Usage
    stop_sequence: str | None = None
    stop_details: Json | None = None
    request_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], *, request_id: str | None = None,
                  headers: Mapping[str, str] | None = None) -> Response:
        return cls(
            id=data["id"],
            model=data["model"],
            content=[block_from_wire(b) for b in data["content"]],
            stop_reason=data.get("stop_reason"),
            usage=Usage.from_wire(data.get("usage") or {}),
            stop_sequence=data.get("stop_sequence"),
            stop_details=data.get("stop_details"),
            request_id=request_id,
            headers=headers or {},
        )

    @property
    def message(self) -> Message:
        return Message("assistant", self.content)


@dataclass(slots=True)
class ToolSpec:
    """A tool definition as sent in ``tools``: custom (``type`` None) or Anthropic-defined (``bash_20250124``...)."""

    name: str
    description: str | None = None
    input_schema: Json | None = None
    type: str | None = None
    cache_control: Json | None = None
    extra: Json | None = None  # e.g. display_width_px for computer use, strict, max_characters

    def to_wire(self) -> Json:
        out: Json = {}
        if self.type:
            out["type"] = self.type
        out["name"] = self.name
        if self.description is not None:
            out["description"] = self.description
        if self.input_schema is not None:
            out["input_schema"] = self.input_schema
        out.update(self.extra or {})
        if self.cache_control is not None:
            out["cache_control"] = self.cache_control
        return out


@dataclass(slots=True)
class MessagesRequest:
    """Everything one call to ``POST /v1/messages`` sends. ``params`` holds any other body field."""

    model: str
    max_tokens: int
    messages: list[Message]
    system: list[TextBlock] | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: Json | None = None
    thinking: Json | None = None
    stop_sequences: list[str] | None = None
    cache_control: Json | None = None
    params: Json = field(default_factory=dict)
    betas: list[str] = field(default_factory=list)
    # Where to put cache breakpoints (a ``tether.api.caching.CachePlan``), applied by ``caching.render``.
    cache: Any = None

    def body(self) -> Json:
        """The wire body, without cache breakpoints."""
        out: Json = {"model": self.model, "max_tokens": self.max_tokens}
        if self.system:
            out["system"] = [b.to_wire() for b in self.system]
        if self.tools:
            out["tools"] = [t.to_wire() for t in self.tools]
        out["messages"] = [m.to_wire() for m in self.messages]
        for name in ("tool_choice", "thinking", "stop_sequences", "cache_control"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(self.params)
        return out

    def count_body(self) -> Json:
        """The body for ``count_tokens``: no max_tokens, stream or stop sequences."""
        body = self.body()
        for name in ("max_tokens", "stop_sequences", "stream", "metadata", "service_tier"):
            body.pop(name, None)
        return body


def compact_encoder(*, sort_keys: bool = False) -> Callable[[Any], str]:
    """Compact JSON (non-ASCII kept as is; keys sorted if ``sort_keys``), written by orjson: a turn's
    request of ~8 KB takes 8 µs instead of 76. What orjson refuses is written by json, as before:
    an integer past 64 bits, a lone surrogate, a key that is not a string, nesting past 255 levels,
    and what neither encodes (a dataclass, a datetime: json's ``TypeError``). Both write the same
    text, but for a float's exponent (``1e-7``, json ``1e-07``) and NaN or an infinity, which JSON
    has no word for: orjson writes ``null``, json ``NaN``, which the API would refuse."""
    option = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
    option |= orjson.OPT_SORT_KEYS if sort_keys else 0
    fallback = _json_encoder(sort_keys)

    def encode(value: Any) -> str:
        try:
            return orjson.dumps(value, option=option).decode()
        except TypeError:  # orjson.JSONEncodeError is one
            return fallback(value)

    return encode


def _json_encoder(sort_keys: bool) -> Callable[[Any], str]:
    """json's compact encoder with its C encoder made once (``JSONEncoder.encode`` makes one per
    call), without the check for circular references: tether encodes wire data."""
    options = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    if c_make_encoder is None:  # pragma: no cover - Pythons without the C accelerator
        return options.encode
    # As JSONEncoder.iterencode makes it (markers, default, string encoder, indent, separators,
    # sort_keys, skipkeys, allow_nan), without the markers.
    encode = c_make_encoder(None, options.default, encode_basestring, None, ":", ",", sort_keys, False, True)
    return lambda value: "".join(encode(value, 0))


_COMPACT = compact_encoder()


def dumps(value: Any) -> str:
    """Compact JSON, as tether stores and compares wire forms."""
    return _COMPACT(value)


def messages_to_json(messages: Iterable[Message]) -> str:
    return dumps([m.to_wire() for m in messages])


def messages_from_json(text: str) -> list[Message]:
    return [Message.from_wire(m) for m in json.loads(text)]
