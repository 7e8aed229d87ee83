"""What next, given a response? Plain decisions with no I/O, tested by feeding them responses."""

from __future__ import annotations

from dataclasses import dataclass

from tether.api.types import ContentBlock, Message, Response, TextBlock, ToolUseBlock


@dataclass(slots=True)
class RunTools:
    calls: list[ToolUseBlock]


@dataclass(slots=True)
class Continue:
    """Call the model again with the assistant message as the last message (no new user turn)."""

    reason: str


@dataclass(slots=True)
class Finish:
    outcome: str  # "completed" or "refusal"
    refusal_category: str | None = None
    explanation: str | None = None


@dataclass(slots=True)
class Fail:
    reason: str  # "context_window" or "max_tokens"
    message: str


Decision = RunTools | Continue | Finish | Fail


def decide(response: Response, continuations: int, max_continuations: int) -> Decision:
    reason = response.stop_reason
    if reason == "tool_use":
        calls = response.message.tool_uses
        return RunTools(calls) if calls else Finish("completed")
    if reason == "max_tokens":
        if continuations >= max_continuations:
            return Fail("max_tokens", f"the response was still cut at max_tokens after {continuations} "
                                      "continuations; raise output.max_tokens or output.max_continuations")
        return Continue("max_tokens")
    if reason == "pause_turn":
        return Continue("pause_turn")
    if reason == "refusal":
        details = response.stop_details or {}
        return Finish("refusal", details.get("category"), details.get("explanation"))
    if reason == "model_context_window_exceeded":
        return Fail("context_window", "the conversation no longer fits the model's context window")
    return Finish("completed")  # end_turn, stop_sequence, and any reason newer than tether


def prefill(content: list[ContentBlock]) -> list[ContentBlock]:
    """A cut response made fit to be continued: no trailing whitespace (the API refuses it)."""
    kept = list(content)
    while kept and isinstance(kept[-1], TextBlock) and not kept[-1].text.strip():
        kept.pop()
    if kept and isinstance(kept[-1], TextBlock):
        last = kept[-1]
        kept[-1] = TextBlock(last.text.rstrip(), last.citations, last.cache_control, last.extra)
    return kept


def merge(head: list[ContentBlock], tail: list[ContentBlock]) -> list[ContentBlock]:
    """One assistant message from a prefilled head and its continuation; text at the seam is joined."""
    if head and tail and isinstance(head[-1], TextBlock) and isinstance(tail[0], TextBlock):
        return [*head[:-1], TextBlock(head[-1].text + tail[0].text), *tail[1:]]
    return [*head, *tail]


def continuation_messages(messages: list[Message], head: list[ContentBlock]) -> list[Message]:
    """The messages for a continuation call: the conversation plus the partial assistant message."""
    return [*messages, Message("assistant", head)] if head else list(messages)
