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
    async def appended(self, seq: int, message: Message, usage: Usage | None, dollars: float) -> None:
        """``message`` is now the conversation's ``seq``-th; ``usage`` is that of the calls that made it."""
        ...

    async def claim(self, call: ToolUseBlock) -> Claim:
        """Record that ``call`` is about to run, and say whether it may.

        "run": it may. A ``ToolResultBlock``: it finished before (a resumed run); use that result.
        "interrupted": it started before and never finished; it may have had effects.
        """
        ...

    async def tool_finished(self, call: ToolUseBlock, result: ToolResultBlock) -> None: ...

    async def ended(self, outcome: str) -> None: ...


class NullJournal:
    async def appended(self, seq: int, message: Message, usage: Usage | None, dollars: float) -> None:
        return None

    async def claim(self, call: ToolUseBlock) -> Claim:
        return "run"

    async def tool_finished(self, call: ToolUseBlock, result: ToolResultBlock) -> None:
        return None

    async def ended(self, outcome: str) -> None:
        return None
