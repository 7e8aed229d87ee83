"""Prompt caching placed automatically, and a monitor that explains misses.

The planner marks at most four breakpoints on a request's wire body: the last tool, the last system
block, and the tail of the conversation; when a turn adds more blocks than the API's 20-block
lookback can bridge, intermediate breakpoints are spaced every ``STRIDE`` blocks after the previous
tail. A breakpoint whose prefix is under the model's minimum cacheable length is skipped.

Positions count content blocks in prompt order (tools, then system blocks, then each message's
blocks). ``render()`` marks copies only: the conversation's messages are never touched, so the
bytes of request N's prefix are those of request N+1 (``cache_control`` aside, which the API does not
hash).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from tether.api.catalog import ModelInfo
from tether.api.tokens import block_tokens, tool_tokens
from tether.api.types import Json, MessagesRequest, Usage, dumps

MAX_BREAKPOINTS = 4
LOOKBACK = 20
STRIDE = 15
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
# Blocks the API refuses cache_control on.
_UNMARKABLE = {"thinking", "redacted_thinking"}

Ttl = Literal["5m", "1h"]


@dataclass(frozen=True, slots=True)
class CachePlan:
    """Where the breakpoints went, in prompt positions, and what the tail covers."""

    breakpoints: tuple[int, ...]
    control: Json
    tail: int | None
    tools_hash: str
    system_hash: str


@dataclass
class CachePlanner:
    """Places breakpoints turn after turn; remembers the last tail to bridge the lookback."""

    model: ModelInfo
    ttl: Ttl = "5m"
    last_tail: int | None = None

    def plan(self, body: Json) -> CachePlan:
        """Choose the breakpoints for ``body`` (an unmarked ``MessagesRequest.body()``)."""
        tools, system = body.get("tools") or [], body.get("system") or []
        positions = _Positions(tools, system, body["messages"])
        floor = positions.first_cacheable(self.model.min_cache_tokens)
        wanted: list[int] = []
        if tools:
            wanted.append(len(tools) - 1)
        if system:
            wanted.append(len(tools) + len(system) - 1)
        tail = positions.last_markable(positions.total - 1)
        wanted += self._bridge(positions, tail, MAX_BREAKPOINTS - len(wanted) - 1)
        if tail is not None:
            wanted.append(tail)
        chosen = tuple(p for p in dict.fromkeys(wanted) if floor is not None and p >= floor)
        self.last_tail = tail
        return CachePlan(
            breakpoints=chosen,
            control={"type": "ephemeral"} if self.ttl == "5m" else {"type": "ephemeral", "ttl": self.ttl},
            tail=tail,
            tools_hash=_digest(tools),
            system_hash=_digest(system),
        )

    def _bridge(self, positions: _Positions, tail: int | None, slots: int) -> list[int]:
        """Intermediate breakpoints so that each lies within the lookback of the one before."""
        if tail is None or self.last_tail is None or slots <= 0 or tail - self.last_tail <= LOOKBACK - 1:
            return []
        found: list[int] = []
        for target in range(self.last_tail + STRIDE, tail, STRIDE):
            position = positions.last_markable(target)
            if position is not None and position > (found[-1] if found else self.last_tail):
                found.append(position)
            if len(found) == slots:
                break
        return found


class _Positions:
    """Prompt positions over the wire lists, copying a block (and its message) before marking it."""

    def __init__(self, tools: list[Json], system: list[Json], messages: list[Json]) -> None:
        self.tools, self.system, self.messages = tools, system, messages
        self.index: list[tuple[int, int]] = []  # position past tools+system -> (message, block)
        for m, message in enumerate(messages):
            self.index.extend((m, b) for b in range(len(message["content"])))
        self.head = len(tools) + len(system)
        self.total = self.head + len(self.index)

    def block(self, position: int) -> Json:
        if position < len(self.tools):
            return self.tools[position]
        if position < self.head:
            return self.system[position - len(self.tools)]
        m, b = self.index[position - self.head]
        return self.messages[m]["content"][b]

    def last_markable(self, position: int) -> int | None:
        while position >= self.head and self.block(position).get("type") in _UNMARKABLE:
            position -= 1
        return position if position >= 0 else None

    def first_cacheable(self, minimum: int) -> int | None:
        """The first position whose prefix reaches ``minimum`` tokens (walks only that far)."""
        total = 0
        for position in range(self.total):
            block = self.block(position)
            total += tool_tokens(block) if position < len(self.tools) else block_tokens(block)
            if total >= minimum:
                return position
        return None

    def mark(self, position: int, control: Json) -> None:
        if position < len(self.tools):
            self.tools[position] = {**self.tools[position], "cache_control": control}
        elif position < self.head:
            i = position - len(self.tools)
            self.system[i] = {**self.system[i], "cache_control": control}
        else:
            m, b = self.index[position - self.head]
            message = self.messages[m]
            content = list(message["content"])
            content[b] = {**content[b], "cache_control": control}
            self.messages[m] = {**message, "content": content}


def render(request: MessagesRequest) -> Json:
    """The wire body of ``request`` with its cache breakpoints marked (on copies of the blocks)."""
    body = request.body()
    if request.cache is not None and request.cache.breakpoints:
        positions = _Positions(body.get("tools") or [], body.get("system") or [], body["messages"])
        for position in request.cache.breakpoints:
            positions.mark(position, request.cache.control)
    return body


def render_json(request: MessagesRequest, **fields: Any) -> bytes:
    """``render(request)``, with ``fields`` added, as the JSON the request sends. Each message the
    planner left unmarked is written from its cached JSON: a turn encodes only what is new or marked,
    instead of the whole conversation again."""
    body = render(request) | fields
    messages = body.pop("messages")
    parts = [m.to_json() if wire is m.to_wire() else dumps(wire)
             for m, wire in zip(request.messages, messages, strict=True)]
    return f'{dumps(body)[:-1]},"messages":[{",".join(parts)}]}}'.encode()


def _digest(value: Any) -> str:
    return hashlib.blake2b(dumps(value).encode(), digest_size=8).hexdigest()


@dataclass
class CacheMonitor:
    """Compares each turn's cache usage with what the previous turn made possible.

    ``explain`` returns None when the turn read what it should have, else the likeliest reason.
    """

    ttl: Ttl = "5m"
    _previous: CachePlan | None = None
    _previous_usage: Usage | None = None
    _previous_at: float = 0.0

    def explain(self, plan: CachePlan, usage: Usage, now: float) -> str | None:
        previous, previous_usage, previous_at = self._previous, self._previous_usage, self._previous_at
        self._previous, self._previous_usage, self._previous_at = plan, usage, now
        if previous is None or not previous.breakpoints or usage.cache_read_input_tokens > 0:
            return None
        if plan.tools_hash != previous.tools_hash:
            return "tools changed since the previous turn, so the whole cache was invalidated"
        if plan.system_hash != previous.system_hash:
            return "the system prompt changed since the previous turn"
        if now - previous_at > TTL_SECONDS[self.ttl]:
            return f"the cache entry expired: {now - previous_at:.0f}s passed, the TTL is {self.ttl}"
        if previous_usage is not None and not (previous_usage.cache_creation_input_tokens
                                               or previous_usage.cache_read_input_tokens):
            return ("the previous turn wrote nothing to the cache: its prefix is under the model's minimum "
                    "cacheable length (the catalog's minimum may be too low for this model)")
        if previous.tail is not None and plan.tail is not None and plan.tail - previous.tail >= LOOKBACK:
            return (f"the breakpoint moved {plan.tail - previous.tail} blocks, beyond the API's "
                    f"{LOOKBACK}-block lookback")
        return "the earlier messages changed, or the cache entry was evicted"
