"""Hooks: code of the user's that runs around model calls and tool calls.

Subclass ``Hooks`` and override what you need; every method defaults to doing nothing.
``before_tool`` may deny a call (the model gets an ``is_error`` result with the reason) or change
its input; ``after_tool`` may replace the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.api.types import Json, MessagesRequest, Response, ToolResultBlock, ToolUseBlock


@dataclass(slots=True)
class Deny:
    reason: str


@dataclass(slots=True)
class Modify:
    input: Json


class Hooks:
    async def before_model_call(self, request: MessagesRequest) -> None:
        return None

    async def after_model_call(self, response: Response) -> None:
        return None

    async def before_tool(self, call: ToolUseBlock) -> Deny | Modify | None:
        return None

    async def after_tool(self, call: ToolUseBlock, result: ToolResultBlock) -> ToolResultBlock | None:
        return None
