"""The ``Journal``: where a run writes down what happened, as it happens, so it can be resumed.

The loop calls it at the points that make a run resumable: each message once it is whole (the
assistant's before its tools start), each tool call before it runs and when it finishes, and the
run's end. ``tether.store`` implements it on a ``SessionStore``; ``NullJournal`` keeps nothing.
"""

from __future__ import annotations

from typing import Literal, Protocol

from tether.api.types import Message, ToolResultBlock, ToolUseBlock, Usage

Claim = ToolResultBlock | Literal["run", "interrupted"]


class Journal(Protocol):
    async def appended(self, message: Message, usage: Usage | None, dollars: float) -> None:
        """``message`` ends the conversation now; ``usage`` is that of the model calls that made it."""
        ...

    async def claim(self, call: ToolUseBlock) -> Claim:
        """Record that ``call`` is about to run, and say whether it may.

        "run": it may. A ``ToolResultBlock``: it finished before (a resumed run); use that result.
        "interrupted": it started before and never finished; it may have had effects.
        """
        ...

    async def tool_finished(self, call: ToolUseBlock, result: ToolResultBlock) -> None: ...

    async def compacted(self, summary: Message | None, kept: int, cleared: list[str]) -> None:
        """The working conversation is now ``summary`` (if any) followed by the last ``kept`` messages
        appended, with the results of the ``cleared`` tool calls cleared."""
        ...

    async def ended(self, outcome: str) -> None: ...


class NullJournal:
    async def appended(self, message: Message, usage: Usage | None, dollars: float) -> None:
        return None

    async def claim(self, call: ToolUseBlock) -> Claim:
        return "run"

    async def tool_finished(self, call: ToolUseBlock, result: ToolResultBlock) -> None:
        return None

    async def compacted(self, summary: Message | None, kept: int, cleared: list[str]) -> None:
        return None

    async def ended(self, outcome: str) -> None:
        return None
