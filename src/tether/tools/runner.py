"""Running one turn's tool calls: validate, time-limit, truncate, and keep the original order.

Calls run concurrently up to ``concurrency``; a tool marked ``exclusive`` runs with nothing beside it.
Every failure (unknown tool, invalid input, timeout, exception) becomes an ``is_error`` result that
tells the model what to fix. An optional ``PermissionPolicy`` is asked after validation and before
the call runs (a refusal is an ``is_error`` result too); an optional ``AuditLog`` records every call.
Cancelling ``run()`` cancels the running calls (their processes are the tools' to kill, in their own
cancellation handlers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tether.api.types import ImageBlock, TextBlock, ToolResultBlock, ToolUseBlock
from tether.tools.audit import AuditEntry, AuditLog, output_digest
from tether.tools.base import Tool, ToolContext, ToolError, ToolOutput
from tether.tools.policy import PermissionPolicy
from tether.tools.schema import input_check

Around = Callable[[ToolUseBlock, Callable[[], Awaitable[ToolResultBlock]]], Awaitable[ToolResultBlock]]


@dataclass
class ToolRunner:
    tools: dict[str, Tool]
    concurrency: int = 8
    default_timeout: float = 120.0
    max_output_chars: int = 100_000
    policy: PermissionPolicy | None = None
    audit: AuditLog | None = None

    @classmethod
    def of(cls, tools: Iterable[Tool], **options) -> ToolRunner:
        by_name: dict[str, Tool] = {}
        for t in tools:
            if t.name in by_name:
                raise ValueError(f"two tools are named {t.name!r}; tool names must be unique")
            by_name[t.name] = t
        return cls(by_name, **options)

    def __post_init__(self) -> None:
        self._checks = {name: input_check(t.input_schema) for name, t in self.tools.items() if t.input_schema is not None}

    def exclusive(self, call: ToolUseBlock) -> bool:
        t = self.tools.get(call.name)
        return bool(t and t.exclusive)

    def idempotent(self, call: ToolUseBlock) -> bool:
        t = self.tools.get(call.name)
        return bool(t and t.idempotent)

    async def run(self, calls: Sequence[ToolUseBlock], run_id: str, *, around: Around | None = None,
                  **context) -> list[ToolResultBlock]:
        """All calls of one turn; the results come back in the order of ``calls``.

        ``around(call, execute)``, if given, wraps each call where it runs (inside the concurrency
        limit): it may record the call, skip ``execute()`` and answer itself, or change the result.
        """
        results: list[ToolResultBlock | None] = [None] * len(calls)
        limit = asyncio.Semaphore(self.concurrency)

        async def one(i: int) -> None:
            call = calls[i]

            def execute() -> Awaitable[ToolResultBlock]:
                return self.run_one(call, ToolContext(run_id, call.id, **context))

            async with limit:
                results[i] = await (around(call, execute) if around else execute())

        batch: list[int] = []
        for i, call in enumerate(calls):
            if self.exclusive(call):
                await _gather(one, batch)
                batch = []
                await one(i)
            else:
                batch.append(i)
        await _gather(one, batch)
        return results  # type: ignore[return-value]

    async def run_one(self, call: ToolUseBlock, context: ToolContext) -> ToolResultBlock:
        output = await self.execute(call, context)
        return ToolResultBlock(call.id, self._truncate(output.content), is_error=True if output.is_error else None)

    async def execute(self, call: ToolUseBlock, context: ToolContext) -> ToolOutput:
        """One call: validate, ask the policy, run with a timeout; recorded in the audit log if there is one."""
        if self.audit is None:
            return (await self._execute(call, context))[0]
        started, clock = datetime.now(UTC), time.monotonic()
        output, decision = None, "cancelled"
        try:
            output, decision = await self._execute(call, context)
            return output
        finally:
            status = "cancelled" if output is None else "error" if output.is_error else "ok"
            await self.audit.record(AuditEntry(
                context.run_id, call.id, call.name, call.input, decision, started.isoformat(),
                round((time.monotonic() - clock) * 1000, 3), status,
                None if output is None else output_digest(output.content),
            ))

    async def _execute(self, call: ToolUseBlock, context: ToolContext) -> tuple[ToolOutput, str]:
        t = self.tools.get(call.name)
        if t is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return ToolOutput(f"Error: there is no tool named {call.name!r}. Available tools: {known}.", True), \
                "unknown-tool"
        problem = self.validate(call)
        if problem:
            return ToolOutput(problem, True), "invalid"
        decision = "allowed"
        if self.policy is not None:
            verdict = await self.policy.decide(call, context)
            if not verdict.allowed:
                return ToolOutput(verdict.message, True), verdict.label
            decision = verdict.label
        if context.gate is not None and (answer := await context.gate(call)) is not None:
            return answer, decision
        timeout = t.timeout or self.default_timeout
        try:
            return await asyncio.wait_for(t.call(call.input, context), timeout), decision
        except TimeoutError:
            return ToolOutput(f"Error: {call.name} did not finish within {timeout:g} seconds and was stopped.",
                              True), decision
        except ToolError as exc:
            return ToolOutput(f"Error: {exc}", True), decision
        except Exception as exc:  # a broken tool must not end the run
            return ToolOutput(f"Error: {call.name} failed: {type(exc).__name__}: {exc}", True), decision

    def validate(self, call: ToolUseBlock) -> str | None:
        check = self._checks.get(call.name)
        errors = check.errors(call.input) if check is not None else []
        if not errors:
            return None
        lines = [f"- {_where(e.absolute_path)}: {e.message}" for e in errors[:10]]
        return f"Error: invalid input for {call.name}:\n" + "\n".join(lines) + \
            f"\nThe input schema is: {self.tools[call.name].input_schema}"

    def _truncate(self, content: str | list[TextBlock | ImageBlock]) -> str | list[TextBlock | ImageBlock]:
        limit = self.max_output_chars
        if isinstance(content, str):
            return _cut(content, limit)
        return [TextBlock(_cut(b.text, limit)) if isinstance(b, TextBlock) else b for b in content]


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return (f"{text[:half]}\n\n[... {len(text) - 2 * half} characters truncated: the output was "
            f"{len(text)} characters, the limit is {limit} ...]\n\n{text[-half:]}")


def _where(path: Iterable[object]) -> str:
    parts = list(path)
    return "input" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


async def _gather(one, indices: list[int]) -> None:
    if indices:
        async with asyncio.TaskGroup() as group:
            for i in indices:
                group.create_task(one(i))

