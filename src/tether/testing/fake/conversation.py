"""The checks on ``messages`` the real API makes before it runs a model (reference §4, §9.5).

Roles alternate from ``user``; every ``tool_use`` is answered by ``tool_result`` blocks at the
beginning of the next message; no ``tool_result`` answers nothing; text is never empty; thinking
comes back with the signature it was issued with; and under ``2026-10-21`` assistant messages hold
no ``document`` and user text carries no ``citations``. Messages quote the real API's wording.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import takewhile
from typing import Any

from tether.api.tokens import message_blocks
from tether.testing.fake.errors import invalid
from tether.testing.fake.gate import NEW_VERSION
from tether.testing.fake.wire import Signer

ROLES = ("user", "assistant", "system")
ALTERNATE = 'messages: roles must alternate between "user" and "assistant"'
NON_EMPTY = (
    "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
)


def check_conversation(messages: Any, version: str, signer: Signer | None) -> None:
    if not isinstance(messages, list):
        raise invalid("messages: Input should be a valid list")
    if not messages:
        raise invalid("messages: at least one message is required")
    pending: list[str] = []
    pending_at, previous = -1, None
    for i, message in enumerate(messages):
        role, blocks = _parts(i, message, final=i == len(messages) - 1)
        if role == "system":
            _check_system_message(i, previous, blocks)
            continue
        if role == previous or (previous is None and role != "user"):
            raise invalid(ALTERNATE)
        if role == "user":
            _check_results(i, blocks, pending, pending_at)
        for j, block in enumerate(blocks):
            _check_block(f"messages.{i}.content.{j}", role, block, version, signer)
        pending = (
            [b.get("id", "") for b in blocks if b.get("type") == "tool_use"] if role == "assistant" else []
        )
        pending_at, previous = i, role
    if pending:
        raise invalid(_unanswered(pending_at, pending))
    _check_prefill(messages[-1])


def _parts(i: int, message: Any, final: bool) -> tuple[str, list[Mapping[str, Any]]]:
    if not isinstance(message, Mapping):
        raise invalid(f"messages.{i}: Input should be a valid dictionary")
    role = message.get("role")
    if role not in ROLES:
        raise invalid(f"messages.{i}.role: Input should be 'user', 'assistant' or 'system'")
    content = message.get("content")
    if not isinstance(content, str | list):
        raise invalid(f"messages.{i}.content: Input should be a valid string or list of content blocks")
    if not content:
        if final and role == "assistant":
            return role, []
        raise invalid(NON_EMPTY.format(i=i))
    blocks = message_blocks(message)
    if not all(isinstance(b, Mapping) and isinstance(b.get("type"), str) for b in blocks):
        raise invalid(f"messages.{i}.content: each content block must be an object with a `type`")
    return role, blocks


def _check_system_message(i: int, previous: str | None, blocks: list[Mapping[str, Any]]) -> None:
    if previous != "user":
        raise invalid(f"messages.{i}: a message with role 'system' must follow a 'user' message")
    if any(b.get("type") != "text" for b in blocks):
        raise invalid(f"messages.{i}.content: messages with role 'system' may only contain text blocks")


def _check_results(i: int, blocks: list[Mapping[str, Any]], pending: list[str], pending_at: int) -> None:
    leading = list(takewhile(lambda b: b.get("type") == "tool_result", blocks))
    if len(leading) < len(pending):
        raise invalid(
            f"messages.{i}: Did not find {len(pending)} tool_result block(s) at the beginning of this message. "
            "Messages following tool_use blocks must begin with a matching number of tool_result blocks."
        )
    answered = {b.get("tool_use_id") for b in leading}
    missing = [tool_id for tool_id in pending if tool_id not in answered]
    if missing:
        raise invalid(_unanswered(pending_at, missing))
    for j, block in enumerate(blocks):
        if block.get("type") == "tool_result" and block.get("tool_use_id") not in pending:
            raise invalid(
                f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding `tool_use` "
                "block in the previous message."
            )


def _unanswered(at: int, ids: list[str]) -> str:
    return (
        f"messages.{at}: `tool_use` ids were found without `tool_result` blocks immediately after: "
        f"{', '.join(ids)}. Each `tool_use` block must have a corresponding `tool_result` block in the next message."
    )


def _check_block(path: str, role: str, block: Mapping[str, Any], version: str, signer: Signer | None) -> None:
    kind = block["type"]
    if kind == "text" and not (isinstance(block.get("text"), str) and block["text"]):
        raise invalid("messages: text content blocks must be non-empty")
    if role == "assistant":
        if kind == "thinking":
            _check_signature(path, block, signer)
        elif kind == "redacted_thinking" and not block.get("data"):
            raise invalid(f"{path}.redacted_thinking.data: Field required")
        elif kind == "document" and version == NEW_VERSION:
            raise invalid(f"{path}: `document` blocks are not permitted in `assistant` messages")
    elif version == NEW_VERSION:
        for where, text in _user_texts(path, block):
            if text.get("citations"):
                raise invalid(
                    f"{where}.citations: `citations` are not permitted on `text` blocks in `user` messages"
                )


def _check_signature(path: str, block: Mapping[str, Any], signer: Signer | None) -> None:
    signature = block.get("signature")
    if not isinstance(signature, str) or not signature:
        raise invalid(f"{path}.thinking.signature: Field required")
    if signer is not None and not signer.verify(str(block.get("thinking", "")), signature):
        raise invalid(f"{path}: Invalid `signature` in `thinking` block")


def _user_texts(path: str, block: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every text block in a user block, including those nested in tool and search results."""
    if block.get("type") == "text":
        yield path, block
    content = block.get("content")
    if block.get("type") in ("tool_result", "search_result") and isinstance(content, list):
        for k, inner in enumerate(content):
            if isinstance(inner, Mapping):
                yield from _user_texts(f"{path}.content.{k}", inner)


def _check_prefill(last: Mapping[str, Any]) -> None:
    if last.get("role") != "assistant":
        return
    blocks = message_blocks(last) if last.get("content") else []
    if blocks and blocks[-1].get("type") == "text" and blocks[-1]["text"] != blocks[-1]["text"].rstrip():
        raise invalid("final assistant content cannot end with trailing whitespace")
