"""How the fake model decides what to say: a ``Behaviour`` maps a request to a reply.

A behaviour is any callable taking the request body (a dict) and returning a ``Turn`` (or the
shorthand ``as_turn`` accepts) or a ``Fault``. Two kinds ship here: ``Script``, a queue of replies
given in advance that falls back to another behaviour when it runs dry, and ``echo``, which repeats
the last user text. ``CodingAgent`` (in ``coding_agent``) simulates a working coding agent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeAlias

from tether.api.tokens import message_blocks
from tether.testing.fake.faults import FAULT_TYPES, Fault
from tether.testing.fake.turns import Block, Turn, as_turn

Reply: TypeAlias = Turn | Fault
ScriptItem: TypeAlias = Turn | Fault | str | Block | Sequence[Block]


class Behaviour(Protocol):
    def __call__(self, request: dict[str, Any]) -> ScriptItem: ...


def as_reply(value: ScriptItem) -> Reply:
    if isinstance(value, FAULT_TYPES):
        return value
    return as_turn(value)  # type: ignore[arg-type]


def last_user_text(request: Mapping[str, Any]) -> str:
    """The text of the last user message: its text blocks and string tool results, joined."""
    for message in reversed(request.get("messages") or ()):
        if message.get("role") != "user":
            continue
        parts = [_text_of(block) for block in message_blocks(message)]
        return "\n".join(p for p in parts if p)
    return ""


def _text_of(block: Mapping[str, Any]) -> str:
    if block.get("type") == "text":
        return block.get("text", "")
    if block.get("type") == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            return content
        return "\n".join(b.get("text", "") for b in content or () if b.get("type") == "text")
    return ""


def echo(request: dict[str, Any]) -> Turn:
    """Say back the last user text (or ``"OK"`` when there is none)."""
    return Turn([{"type": "text", "text": last_user_text(request) or "OK"}])


class Script:
    """Replies given in advance, one per request, then ``then`` (``echo`` by default)."""

    def __init__(self, replies: Iterable[ScriptItem] = (), then: Behaviour = echo) -> None:
        self._replies: deque[Reply] = deque(as_reply(r) for r in replies)
        self.then = then

    def __call__(self, request: dict[str, Any]) -> Reply:
        if self._replies:
            return self._replies.popleft()
        return as_reply(self.then(request))

    def extend(self, replies: Iterable[ScriptItem]) -> None:
        self._replies.extend(as_reply(r) for r in replies)

    @property
    def remaining(self) -> int:
        return len(self._replies)
