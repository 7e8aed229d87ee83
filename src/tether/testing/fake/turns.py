"""What the fake model says in one turn: content blocks in wire form, plus an optional stop reason.

A ``Turn`` holds blocks exactly as they appear in a response (``text``, ``thinking``,
``redacted_thinking``, ``tool_use``, ``server_tool_use``, server tool results, ...). Missing ids
and signatures are filled in when the turn is answered. The helpers below build common blocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Block = dict[str, Any]

STOP_REASONS = frozenset(
    {
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
        "compaction",  # beta
    }
)


@dataclass(frozen=True, slots=True)
class Turn:
    content: list[Block] = field(default_factory=list)
    stop_reason: str | None = None  # None: "tool_use" if a tool is called, else "end_turn"
    stop_details: dict[str, Any] | None = None  # for "refusal"; defaults to {"type": "refusal", ...}

    def __post_init__(self) -> None:
        if self.stop_reason is not None and self.stop_reason not in STOP_REASONS:
            raise ValueError(
                f"unknown stop_reason {self.stop_reason!r}; expected one of {sorted(STOP_REASONS)}"
            )


def text(value: str, **extra: Any) -> Block:
    return {"type": "text", "text": value, **extra}


def thinking(value: str, signature: str | None = None) -> Block:
    block: Block = {"type": "thinking", "thinking": value}
    if signature is not None:
        block["signature"] = signature
    return block


def redacted_thinking(
    data: str = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP",
) -> Block:
    return {"type": "redacted_thinking", "data": data}


def tool_use(name: str, input: Mapping[str, Any], id: str | None = None) -> Block:
    block: Block = {"type": "tool_use", "name": name, "input": dict(input)}
    if id is not None:
        block["id"] = id
    return block


def server_tool_use(name: str, input: Mapping[str, Any], id: str | None = None) -> Block:
    return {**tool_use(name, input, id), "type": "server_tool_use"}


def refusal(explanation: str | None = None, category: str | None = None, said: str = "") -> Turn:
    details = {"type": "refusal", "category": category, "explanation": explanation}
    return Turn([text(said)] if said else [], stop_reason="refusal", stop_details=details)


def as_turn(value: Turn | str | Block | Sequence[Block]) -> Turn:
    """Accept the shorthand forms a script may use: a string, one block, or a list of blocks."""
    if isinstance(value, Turn):
        return value
    if isinstance(value, str):
        return Turn([text(value)])
    if isinstance(value, Mapping):
        return Turn([dict(value)])
    if isinstance(value, Sequence):
        return Turn([dict(block) for block in value])
    raise TypeError(f"cannot make a turn of {value!r}")
