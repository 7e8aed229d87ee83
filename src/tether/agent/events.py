"""The events of a run: a closed union of small dataclasses.

A consumer can render a whole run from these alone; ``to_dict`` gives each one as JSON.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from tether.api.types import ContentBlock, Json, Message, Usage


@dataclass(slots=True)
class RunStarted:
    run_id: str
    model: str
    task: str
    type: Literal["run_started"] = "run_started"


@dataclass(slots=True)
class TextDelta:
    text: str
    type: Literal["text_delta"] = "text_delta"


@dataclass(slots=True)
class ThinkingDelta:
    thinking: str
    type: Literal["thinking_delta"] = "thinking_delta"


@dataclass(slots=True)
class ToolCallStarted:
    """The model began a tool call; its input follows as ``ToolInputDelta`` pieces."""

    id: str
    name: str
    type: Literal["tool_call_started"] = "tool_call_started"


@dataclass(slots=True)
class ToolInputDelta:
    id: str
    partial_json: str
    type: Literal["tool_input_delta"] = "tool_input_delta"


@dataclass(slots=True)
class ToolCallFinished:
    """The model finished writing a tool call; ``input`` is complete."""

    id: str
    name: str
    input: Json
    type: Literal["tool_call_finished"] = "tool_call_finished"


@dataclass(slots=True)
class ToolResult:
    id: str
    name: str
    content: str | list[ContentBlock]
    is_error: bool
    seconds: float
    type: Literal["tool_result"] = "tool_result"


@dataclass(slots=True)
class UsageReport:
    """The usage and dollars of one model call, and the run's totals so far."""

    turn: int
    usage: Usage
    dollars: float
    total_usage: Usage
    total_dollars: float
    type: Literal["usage"] = "usage"


@dataclass(slots=True)
class TurnEnd:
    turn: int
    stop_reason: str | None
    message: Message
    type: Literal["turn_end"] = "turn_end"


@dataclass(slots=True)
class Warning:
    code: str
    message: str
    type: Literal["warning"] = "warning"


@dataclass(slots=True)
class Compacted:
    """The conversation was compacted: old tool results "cleared", or older turns "summarized"."""

    kind: str
    tokens_before: int
    tokens_after: int
    messages_before: int
    messages_after: int
    type: Literal["compacted"] = "compacted"


@dataclass(slots=True)
class RunEnd:
    """The last event. ``outcome`` is "completed", "refusal", or the category of the error that ended it."""

    outcome: str
    text: str
    turns: int
    usage: Usage
    dollars: float
    error: str | None = None
    type: Literal["run_end"] = "run_end"


Event = (
    RunStarted
    | TextDelta
    | ThinkingDelta
    | ToolCallStarted
    | ToolInputDelta
    | ToolCallFinished
    | ToolResult
    | UsageReport
    | TurnEnd
    | Warning
    | Compacted
    | RunEnd
)


def to_dict(event: Event) -> dict[str, Any]:
    """An event as JSON-ready data (messages and blocks in their wire form)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, Message):
            value = value.to_wire()
        elif isinstance(value, Usage):
            value = value.to_dict()
        elif isinstance(value, list):
            value = [v.to_wire() if hasattr(v, "to_wire") else v for v in value]
        out[f.name] = value
    return out
