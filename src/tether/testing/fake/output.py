"""From a scripted turn to the content the API would return: ids, signatures, stop sequences,
truncation at the output limit, the stop reason, and the output token count.

Output tokens are counted with ``tether.api.tokens.block_tokens`` over the blocks returned, so a
client can predict them exactly. Text and thinking are cut to fit the limit; a block of any other
kind that does not fit is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tether.api.tokens import block_tokens
from tether.testing.fake.turns import Block, Turn
from tether.testing.fake.wire import Ids, Signer

CUTTABLE = {"text": "text", "thinking": "thinking"}
SERVER_REQUEST_FIELDS = {"web_search": "web_search_requests", "web_fetch": "web_fetch_requests"}


@dataclass(slots=True)
class Output:
    content: list[Block]
    stop_reason: str
    stop_sequence: str | None
    stop_details: dict[str, Any] | None
    output_tokens: int
    thinking_tokens: int
    server_tool_use: dict[str, int] | None


class Composer:
    """Turns a ``Turn`` into an ``Output`` for one request."""

    def __init__(self, ids: Ids, signer: Signer) -> None:
        self.ids = ids
        self.signer = signer

    def compose(self, turn: Turn, request: Mapping[str, Any], limit: int, limit_reason: str) -> Output:
        if request.get("max_tokens") == 0:  # a cache pre-warm: nothing is generated
            return Output([], "max_tokens", None, None, 0, 0, None)
        blocks = [self._complete(block) for block in turn.content]
        blocks, sequence = cut_at_stop_sequence(blocks, request.get("stop_sequences") or ())
        blocks, tokens, truncated = self._fit(blocks, limit)
        reason = _stop_reason(turn, blocks, sequence, truncated, limit_reason)
        details = (turn.stop_details or _refusal()) if reason == "refusal" else None
        thinking = sum(t for b, t in zip(blocks, tokens, strict=True) if "thinking" in b["type"])
        return Output(blocks, reason, sequence, details, max(1, sum(tokens)), thinking, _server_uses(blocks))

    def _complete(self, block: Mapping[str, Any]) -> Block:
        block = dict(block)
        kind = block.get("type")
        if kind == "tool_use":
            block.setdefault("id", self.ids.tool_use())
            block.setdefault("input", {})
        elif kind == "server_tool_use":
            block.setdefault("id", self.ids.server_tool_use())
            block.setdefault("input", {})
        elif kind == "thinking":
            block.setdefault("thinking", "")
            if block.get("signature"):
                self.signer.remember(block["signature"])
            else:
                block["signature"] = self.signer.sign(block["thinking"])
        elif kind == "text":
            block.setdefault("text", "")
        return block

    def _fit(self, blocks: list[Block], limit: int) -> tuple[list[Block], list[int], bool]:
        """The blocks that fit in ``limit`` tokens, the tokens of each, and whether any was cut."""
        kept: list[Block] = []
        costs: list[int] = []
        used = 0
        for block in blocks:
            cost = block_tokens(block)
            if used + cost <= limit:
                kept.append(block)
                costs.append(cost)
                used += cost
                continue
            cut = self._cut(block, limit - used)
            if cut is not None:
                kept.append(cut)
                costs.append(block_tokens(cut))
            return kept, costs, True
        return kept, costs, False

    def _cut(self, block: Block, budget: int) -> Block | None:
        """The longest prefix of a text or thinking block that costs at most ``budget`` tokens."""
        field = CUTTABLE.get(block["type"])
        if field is None:
            return None
        value: str = block[field]
        low, high = 0, len(value)
        while low < high:
            mid = (low + high + 1) // 2
            if block_tokens({**block, field: value[:mid]}) <= budget:
                low = mid
            else:
                high = mid - 1
        if low == 0:
            return None
        cut = {**block, field: value[:low]}
        if field == "thinking":
            cut["signature"] = self.signer.sign(cut["thinking"])
        return cut


def cut_at_stop_sequence(blocks: list[Block], sequences: Sequence[str]) -> tuple[list[Block], str | None]:
    """Stop at the first text that contains one of ``sequences`` (the sequence itself is not output)."""
    for i, block in enumerate(blocks):
        if block.get("type") != "text":
            continue
        found = [(block["text"].find(s), s) for s in sequences if s and s in block["text"]]
        if found:
            position, sequence = min(found, key=lambda f: (f[0], -len(f[1])))
            head = blocks[:i]
            if position:
                head.append({**block, "text": block["text"][:position]})
            return head, sequence
    return blocks, None


def _stop_reason(
    turn: Turn, blocks: list[Block], sequence: str | None, truncated: bool, limit_reason: str
) -> str:
    if truncated:
        return limit_reason
    if sequence is not None:
        return "stop_sequence"
    if turn.stop_reason is not None:
        return turn.stop_reason
    return "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"


def _refusal() -> dict[str, Any]:
    return {"type": "refusal", "category": None, "explanation": None}


def _server_uses(blocks: list[Block]) -> dict[str, int] | None:
    counts = {field: 0 for field in SERVER_REQUEST_FIELDS.values()}
    for block in blocks:
        if block["type"] == "server_tool_use" and block.get("name") in SERVER_REQUEST_FIELDS:
            counts[SERVER_REQUEST_FIELDS[block["name"]]] += 1
    return counts if any(counts.values()) else None
