"""tether's deterministic token approximation.

The real tokenizer is not public. tether (for estimates before a call) and its fake Messages API
(for ``count_tokens`` and usage) both count with these rules, so tests agree with the fake exactly:

- a piece of text counts ``ceil(utf8_bytes / 4)`` tokens, at least 1;
- a content block counts the text of its compact JSON form with ``cache_control`` removed, except
  that an ``image`` counts a flat ``IMAGE_TOKENS`` and a base64 ``document`` counts its decoded size;
- a message adds ``MESSAGE_OVERHEAD`` tokens; a tool definition counts its compact JSON;
- a system prompt given as a string counts as one text block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tether.api.types import dumps

IMAGE_TOKENS = 1_600
MESSAGE_OVERHEAD = 3


def text_tokens(text: str) -> int:
    return max(1, -(-len(text.encode()) // 4))


def block_tokens(block: Mapping[str, Any]) -> int:
    kind = block.get("type")
    if kind == "image":
        return IMAGE_TOKENS
    if kind == "document" and block.get("source", {}).get("type") == "base64":
        return text_tokens("x" * (len(block["source"].get("data", "")) * 3 // 4))
    if "cache_control" in block:
        block = {k: v for k, v in block.items() if k != "cache_control"}
    return text_tokens(dumps(block))


def tool_tokens(tool: Mapping[str, Any]) -> int:
    return block_tokens(tool)


def system_blocks(system: str | Iterable[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"type": "text", "text": system}]
    return list(system)


def message_blocks(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def count_request(request: Mapping[str, Any]) -> int:
    """Tokens of a request's whole prompt: tools, then system, then messages."""
    total = sum(tool_tokens(t) for t in request.get("tools") or ())
    total += sum(block_tokens(b) for b in system_blocks(request.get("system")))
    for message in request.get("messages") or ():
        total += MESSAGE_OVERHEAD + sum(block_tokens(b) for b in message_blocks(message))
    return total
