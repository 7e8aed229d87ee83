"""Who may run what: per-tool permission modes, and allow/deny patterns for shell commands.

``PermissionPolicy`` gives each tool a mode — ``allow``, ``ask`` or ``deny`` — and a default for
the rest. "ask" awaits the approval callback; its answer ``always`` lets that tool run without asking
for the rest of the run. A refusal is not an exception: the runner turns it into an ``is_error``
tool result, so the model learns it and can adapt.

``CommandPolicy`` is a guard-rail for the bash tool, checked before a command runs. Regular
expressions over shell text are easy to get around on purpose; they stop mistakes, not attackers.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from tether.api.types import ToolUseBlock
from tether.tools.base import ToolContext

Mode = Literal["allow", "ask", "deny"]
Answer = Literal["yes", "no", "always"]
Approver = Callable[[ToolUseBlock, ToolContext], Awaitable[Answer]]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    # For the audit log: allowed, denied, asked-yes, asked-always, asked-no, asked-none, asked-error.
    label: str
    # What the model is told when the call is refused.
    message: str = ""


@dataclass
class PermissionPolicy:
    modes: dict[str, Mode] = field(default_factory=dict)
    default: Mode = "allow"
    approve: Approver | None = None

    def __post_init__(self) -> None:
        for name, mode in [*self.modes.items(), ("default", self.default)]:
            if mode not in ("allow", "ask", "deny"):
                raise ValueError(f"permission mode for {name!r} is {mode!r}; use allow, ask or deny")
        self._always: set[tuple[str, str]] = set()
        self._asking = asyncio.Lock()

    def mode(self, tool: str, run_id: str) -> Mode:
        if (run_id, tool) in self._always:
            return "allow"
        return self.modes.get(tool, self.default)

    async def decide(self, call: ToolUseBlock, context: ToolContext) -> Decision:
        mode = self.mode(call.name, context.run_id)
        if mode == "allow":
            return Decision(True, "allowed")
        if mode == "deny":
            return Decision(False, "denied", f"Error: the permission policy does not allow the tool {call.name}. "
                                             "Do not call it again; find another way or ask the user.")
        async with self._asking:  # one question at a time, so an "always" covers the calls queued behind it
            if self.mode(call.name, context.run_id) == "allow":
                return Decision(True, "allowed")
            return await self._ask(call, context)

    async def _ask(self, call: ToolUseBlock, context: ToolContext) -> Decision:
        if self.approve is None:
            return Decision(False, "asked-none", f"Error: the tool {call.name} needs the user's approval and no "
                                                 "one is available to give it; the call was not run.")
        try:
            answer = await self.approve(call, context)
        except Exception as exc:  # a broken approver refuses; it must not end the run
            return Decision(False, "asked-error", f"Error: asking the user to approve {call.name} failed "
                                                  f"({type(exc).__name__}); the call was not run.")
        if answer == "always":
            self._always.add((context.run_id, call.name))
            return Decision(True, "asked-always")
        if answer == "yes":
            return Decision(True, "asked-yes")
        return Decision(False, "asked-no", f"Error: the user denied permission to run {call.name} with this "
                                           "input; the call was not run. Adapt, or ask the user what to do.")


@dataclass(frozen=True)
class CommandPolicy:
    """``deny`` patterns refuse a command that matches one; a non-empty ``allow`` list refuses any other."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allow", _compile(self.allow))
        object.__setattr__(self, "_deny", _compile(self.deny))

    def check(self, command: str) -> str | None:
        """Why ``command`` is refused, or None when it may run."""
        for pattern in self._deny:  # type: ignore[attr-defined]
            if pattern.search(command):
                return f"the command matches the deny pattern `{pattern.pattern}`"
        if self._allow and not any(p.search(command) for p in self._allow):  # type: ignore[attr-defined]
            shown = ", ".join(f"`{p.pattern}`" for p in self._allow)  # type: ignore[attr-defined]
            return f"the command matches none of the allowed patterns ({shown})"
        return None


def _compile(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in patterns)
