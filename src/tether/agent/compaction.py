"""Context compaction: what to do when the conversation outgrows the model's context window.

First the results of old tool calls are cleared (the latest ``keep_tool_results`` are kept); if that
is not enough, the older turns are summarised by the model and replaced by one user message holding
the summary. Compaction happens only at a turn boundary, so between two compactions the
conversation grows append-only and its cache prefix stays stable.

The functions here decide and rewrite; they do no I/O (the summary call is the loop's).
"""

from __future__ import annotations

from tether.api.tokens import MESSAGE_OVERHEAD, block_tokens
from tether.api.types import Message, TextBlock, ToolResultBlock

CLEARED = "[this tool result was cleared to save context]"
SUMMARY_PROMPT = (
    "The conversation so far is about to be replaced by a summary, because it no longer fits the "
    "context window. Write that summary now: the task, what has been done and found (files, commands, "
    "decisions, results), what remains to do, and anything the rest of the work depends on. "
    "Be complete but brief; answer with the summary only."
)
SUMMARY_HEADER = "Summary of the conversation so far (older turns were compacted):\n\n"


def message_tokens(message: Message) -> int:
    return MESSAGE_OVERHEAD + sum(block_tokens(b) for b in message.to_wire()["content"])


def clear_tool_results(messages: list[Message], keep: int) -> tuple[list[Message], list[str]]:
    """The conversation with all but the latest ``keep`` tool results cleared, and the ids cleared."""
    ids = [b.tool_use_id for m in messages for b in m.content
           if isinstance(b, ToolResultBlock) and b.content != CLEARED]
    cleared = set(ids[: max(len(ids) - keep, 0)])
    return clear(messages, cleared), sorted(cleared)


def clear(messages: list[Message], ids: set[str]) -> list[Message]:
    """``messages`` with the results of the calls in ``ids`` cleared (new objects where they change)."""
    out = []
    for message in messages:
        if any(isinstance(b, ToolResultBlock) and b.tool_use_id in ids for b in message.content):
            message = Message(message.role, [
                ToolResultBlock(b.tool_use_id, CLEARED, b.is_error) if isinstance(b, ToolResultBlock)
                and b.tool_use_id in ids else b for b in message.content])
        out.append(message)
    return out


def summary_cut(messages: list[Message], keep: int) -> int | None:
    """Where the summary ends: the index of the first kept message, an assistant message, so that the
    conversation stays valid after a user message with the summary. None if nothing can be cut."""
    for k in range(len(messages) - keep, 0, -1):
        if messages[k].role == "assistant":
            return k
    return None


def summary_request(messages: list[Message], cut: int) -> list[Message]:
    """The messages to ask for a summary of ``messages[:cut]`` (which ends with a user message)."""
    head = messages[:cut]
    last = head[-1]
    return [*head[:-1], Message("user", [*last.content, TextBlock(SUMMARY_PROMPT)])]


def summary_message(summary: str) -> Message:
    return Message("user", [TextBlock(SUMMARY_HEADER + summary)])
