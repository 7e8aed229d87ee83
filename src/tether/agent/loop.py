"""The agent loop: call the model, stream its events, run its tools, until it is done.

``Agent`` holds what does not change between runs; each ``stream()`` creates a ``Run`` that owns one
conversation. Decisions are in ``decide.py``; this module only does the I/O around them.

Cancellation: cancelling the task that iterates ``stream()`` (or ``run()``) closes the model's stream
and cancels running tools; the conversation is left valid (an unfinished assistant message is
dropped, interrupted tool calls get ``is_error`` results), so it can be saved and continued.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tether.agent import compaction
from tether.agent import events as ev
from tether.agent.decide import (
    Continue,
    Fail,
    Finish,
    RunTools,
    continuation_messages,
    decide,
    merge,
    prefill,
)
from tether.agent.hooks import Deny, Hooks, Modify
from tether.agent.journal import Journal, NullJournal
from tether.agent.limits import Spent, check
from tether.api import stream as st
from tether.api.caching import CacheMonitor
from tether.api.catalog import Catalog, ModelInfo, default_catalog
from tether.api.client import ModelClient
from tether.api.cost import cost_of
from tether.api.request import RequestBuilder
from tether.api.tokens import count_request
from tether.api.types import (
    ContentBlock,
    Message,
    MessagesRequest,
    Response,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
    dumps,
)
from tether.config import Settings
from tether.errors import APIError, APIStatusError, ContextWindowExceeded, RunError, TetherError
from tether.tools.audit import AuditLog
from tether.tools.base import Tool, ToolContext, ToolOutput
from tether.tools.policy import PermissionPolicy
from tether.tools.runner import ToolRunner

INTERRUPTED = "Error: the run was interrupted before this tool call finished; it may or may not have had effects."
NOT_RUN = "Error: the run was interrupted before this tool call ran; it had no effect."


@dataclass
class RunResult:
    run_id: str
    outcome: str  # "completed", "refusal", or the category of the error that ended the run
    messages: list[Message]
    turns: int
    usage: Usage
    dollars: float
    refusal_category: str | None = None

    @property
    def text(self) -> str:
        """The text of the last assistant message."""
        for message in reversed(self.messages):
            if message.role == "assistant":
                return message.text
        return ""

    def conversation_json(self) -> str:
        return dumps([m.to_wire() for m in self.messages])


@dataclass
class Agent:
    client: ModelClient
    model: str | None = None
    system: str | None = None
    # Project memory (AGENTS.md and the like): a system block of its own, cached with the system prompt.
    memory: str | None = None
    tools: Sequence[Tool] = ()
    settings: Settings = field(default_factory=Settings)
    hooks: Hooks = field(default_factory=Hooks)
    catalog: Catalog | None = None
    workspace: Path | None = None
    policy: PermissionPolicy | None = None
    audit: AuditLog | None = None
    # Seconds, for wall-time limits and cache TTLs; tests pass the fake API's clock.
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.model_info: ModelInfo = (self.catalog or default_catalog()).get(self.model or self.settings.model)
        s = self.settings.tools
        self.runner = ToolRunner.of(self.tools, concurrency=s.concurrency, default_timeout=s.timeout,
                                    max_output_chars=s.max_output_chars, policy=self.policy, audit=self.audit)
        self.builder()  # settings the model cannot take are an error now, before any call

    def builder(self) -> RequestBuilder:
        betas = sorted({b for t in self.tools if (b := getattr(t, "beta", None))})
        return RequestBuilder(
            self.model_info, self.settings.output, self.settings.cache,
            system=[TextBlock(text) for text in (self.system, self.memory) if text] or None,
            tools=[t.spec() for t in self.tools],
            betas=betas,
        )

    def start(self, *, messages: Sequence[Message] = (), run_id: str | None = None,
              journal: Journal | None = None) -> Run:
        """A run that continues ``messages``; iterate ``run.events(task)`` to drive it."""
        return Run(self, list(messages), run_id or f"run_{uuid.uuid4().hex[:16]}", journal)

    def stream(self, task: str | None = None, *, messages: Sequence[Message] = (),
               run_id: str | None = None) -> AsyncIterator[ev.Event]:
        """Run ``task`` (after ``messages``, a conversation to continue), yielding its events."""
        return self.start(messages=messages, run_id=run_id).events(task)

    async def run(self, task: str | None = None, *, messages: Sequence[Message] = (),
                  run_id: str | None = None) -> RunResult:
        """Run to the end. A run that ends early raises its ``RunError`` with the partial result."""
        run = self.start(messages=messages, run_id=run_id)
        async for _ in run.events(task):
            pass
        if run.error is not None:
            raise run.error
        return run.result()


class Run:
    """One run's state: the conversation, what it spent, and the request builder it learns with."""

    def __init__(self, agent: Agent, messages: list[Message], run_id: str, journal: Journal | None = None) -> None:
        self.agent, self.messages, self.id = agent, messages, run_id
        self.journal: Journal = journal or NullJournal()
        self.builder = agent.builder()
        self.monitor = CacheMonitor(agent.settings.cache.ttl)
        self.spent = Spent()
        self.usage = Usage()
        self.outcome = "completed"
        self.refusal_category: str | None = None
        self.error: TetherError | None = None
        self.started = agent.clock()
        self.cleared: set[str] = set()  # tool calls whose results compaction cleared
        self.claimed: set[str] = set()  # tool calls this run claimed in the journal
        self.context_tokens: int | None = None  # the estimated prompt of the next call

    def result(self) -> RunResult:
        return RunResult(self.id, self.outcome, self.messages, self.spent.turns, self.usage,
                         self.spent.dollars, self.refusal_category)

    async def events(self, task: str | None = None) -> AsyncIterator[ev.Event]:
        """Drive the run. With no ``task``, it resumes the conversation where it stands."""
        yield ev.RunStarted(self.id, self.agent.model_info.id, task or "")
        for warning in self.builder.warnings:
            yield ev.Warning("settings", warning)
        try:
            pending = self.pending_calls()
            if pending:  # tool calls a previous run left without results; the new task rides along
                async for event in self._run_tools(pending, follow_up=task, resumed=True):
                    yield event
            elif task:
                await self._append(Message.user(task))
            if self.messages and self.messages[-1].role == "user":
                async for event in self._turns():
                    yield event
        except (RunError, APIError) as exc:
            self.error = exc
            if isinstance(exc, RunError):
                exc.result = self.result()
            self.outcome = exc.category
        await self.journal.ended(self.outcome)
        yield ev.RunEnd(self.outcome, self.result().text, self.spent.turns, self.usage, self.spent.dollars,
                        error=str(self.error) if self.error else None)

    def pending_calls(self) -> list[ToolUseBlock]:
        """Tool calls of the last assistant message that have no results yet (a run cut short)."""
        if self.messages and self.messages[-1].role == "assistant":
            return self.messages[-1].tool_uses
        return []

    async def _append(self, message: Message, usage: Usage | None = None, dollars: float = 0.0) -> None:
        """Add ``message`` and journal it. A user message after an unanswered one joins it in one turn
        (as the API combines consecutive turns); the journal keeps both as they came."""
        if message.role == "user" and self.messages and self.messages[-1].role == "user":
            self.messages[-1] = combine(self.messages[-1], message)
        else:
            self.messages.append(message)
        if usage is not None:
            self.context_tokens = usage.prompt_tokens + usage.output_tokens
        elif self.context_tokens is not None:
            self.context_tokens += compaction.message_tokens(message)
        await self.journal.appended(message, usage, dollars)

    async def _turns(self) -> AsyncIterator[ev.Event]:
        while True:
            self.spent.seconds = self.agent.clock() - self.started
            check(self.agent.settings.limits, self.spent)
            if self._over_trigger():
                async for event in self._compact():
                    yield event
            response = None
            try:
                async for event in self._respond():
                    if isinstance(event, Response):
                        response = event
                    else:
                        yield event
            except _ContextFull:
                before = len(self.messages), self.estimate()
                async for event in self._compact():
                    yield event
                if (len(self.messages), self.estimate()) == before:
                    raise ContextWindowExceeded("the conversation no longer fits the model's context window, "
                                                "and compacting it did not make it smaller") from None
                continue
            assert response is not None
            decision = decide(response, 0, 0)
            yield ev.TurnEnd(self.spent.turns, response.stop_reason, self.messages[-1])
            if isinstance(decision, RunTools):
                async for event in self._run_tools(decision.calls):
                    yield event
                continue
            if isinstance(decision, Finish):
                self.outcome, self.refusal_category = decision.outcome, decision.refusal_category
                return
            assert isinstance(decision, Fail)
            raise ContextWindowExceeded(decision.message)

    def estimate(self) -> int:
        """Tokens of the next request's prompt: from the last usage and what was added since."""
        if self.context_tokens is None:
            self.context_tokens = count_request(self.builder.build(self.messages).body())
        return self.context_tokens

    def _over_trigger(self) -> bool:
        settings = self.agent.settings.compaction
        window = self.agent.model_info.context_window
        return settings.enabled and self.estimate() >= settings.trigger * window

    async def _compact(self) -> AsyncIterator[ev.Event]:
        """Clear old tool results; if the prompt is still over the trigger, summarise older turns."""
        settings = self.agent.settings.compaction
        before, count = self.estimate(), len(self.messages)
        messages, cleared = compaction.clear_tool_results(self.messages, settings.keep_tool_results)
        summary = self.messages[0] if self.messages and self.messages[0].text.startswith(
            compaction.SUMMARY_HEADER) else None
        kind = "cleared"
        self.messages, self.cleared = messages, self.cleared | set(cleared)
        self.context_tokens = None
        cut = compaction.summary_cut(messages, settings.keep_messages)
        if self._over_trigger() and cut is not None:
            text = await self._summarise(messages, cut)
            summary = compaction.summary_message(text)
            self.messages = [summary, *messages[cut:]]
            self.context_tokens, kind = None, "summarized"
        if len(self.messages) == count and not cleared:
            return
        kept = len(self.messages) - (1 if summary is not None else 0)
        await self.journal.compacted(summary, kept, sorted(self.cleared))
        yield ev.Compacted(kind, before, self.estimate(), count, len(self.messages))

    async def _summarise(self, messages: list[Message], cut: int) -> str:
        request = self.builder.build(compaction.summary_request(messages, cut))
        request.max_tokens = min(self.agent.settings.compaction.summary_max_tokens, request.max_tokens)
        request.thinking = None
        response = await self.agent.client.create(request)
        self._account(request, response)
        return Message("assistant", response.content).text

    async def _respond(self) -> AsyncIterator[ev.Event | Response]:
        """One assistant message, continued across max_tokens and pause_turn; appended when whole."""
        head: list[ContentBlock] = []
        continuations = 0
        limit = self.agent.settings.output.max_continuations
        usage, dollars = Usage(), 0.0
        while True:
            response = None
            async for event in self._call(continuation_messages(self.messages, head)):
                if isinstance(event, Response):
                    response = event
                else:
                    yield event
            assert response is not None
            usage, dollars = usage + response.usage, dollars + cost_of(response.usage, self.agent.model_info).dollars
            content = merge(head, response.content)
            decision = decide(response, continuations, limit)
            if isinstance(decision, Continue):
                head, continuations = prefill(content), continuations + 1
                continue
            if (isinstance(decision, Fail) and decision.reason == "context_window"
                    and self.agent.settings.compaction.enabled):
                raise _ContextFull
            await self._append(Message("assistant", content), usage, dollars)
            if isinstance(decision, Fail) and decision.reason == "max_tokens":
                raise RunError(decision.message)
            response.content = content
            yield response
            return

    async def _call(self, messages: list[Message]) -> AsyncIterator[ev.Event | Response]:
        """One model call; a parameter or beta the API refuses is dropped and the call made once more."""
        request = self.builder.build(messages)
        await self.agent.hooks.before_model_call(request)
        try:
            async for event in self._model(request):
                yield event
        except APIStatusError as exc:
            refused = self.builder.refusals.learn(exc, request)
            if refused is None:
                raise
            yield ev.Warning("refused_parameter",
                             f"the API refused {refused} ({exc}); retrying without it for the rest of the run")
            async for event in self._model(self.builder.build(messages)):
                yield event

    async def _model(self, request: MessagesRequest) -> AsyncIterator[ev.Event | Response]:
        if self.builder.must_stream:
            response = None
            names: dict[int, str] = {}
            async for event in self.agent.client.stream(request):
                if isinstance(event, st.MessageComplete):
                    response = event.response
                elif isinstance(event, st.StreamRestart):
                    names.clear()
                    yield ev.Warning("stream_restarted", f"the stream failed ({event.error}); the model call is "
                                     f"being made again (attempt {event.attempt + 1}): discard its partial output")
                elif (mapped := _map(event, names)) is not None:
                    yield mapped
            assert response is not None
        else:
            response = await self.agent.client.create(request)
            for mapped in _replay(response.content):
                yield mapped
        await self.agent.hooks.after_model_call(response)
        for event in self._account(request, response):
            yield event
        yield response

    def _account(self, request: MessagesRequest, response: Response) -> list[ev.Event]:
        self.spent.turns += 1
        cost = cost_of(response.usage, self.agent.model_info).dollars
        self.usage = self.usage + response.usage
        self.spent.tokens = self.usage.prompt_tokens + self.usage.output_tokens
        self.spent.dollars += cost
        out: list[ev.Event] = [ev.UsageReport(self.spent.turns, response.usage, cost, self.usage, self.spent.dollars)]
        if request.cache is not None:
            reason = self.monitor.explain(request.cache, response.usage, self.agent.clock())
            if reason:
                out.append(ev.Warning("cache_miss", reason))
        return out

    async def _run_tools(self, calls: list[ToolUseBlock], follow_up: str | None = None,
                         resumed: bool = False) -> AsyncIterator[ev.Event]:
        """Run one turn's calls; every call is answered, in order, in one user message, even if cancelled.

        ``follow_up`` is text the user adds after the results, in the same message. ``resumed`` calls
        come from an earlier run and may have a recorded result.
        """
        extra = [TextBlock(follow_up)] if follow_up else []
        finished: dict[str, ev.ToolResult] = {}
        # Each call's result goes to the journal as the call ends, without waiting for it: the last
        # one's record and the results message are then written together (in one commit of a
        # group-committing store). Either may land first: a resumed run reads the message if it has it.
        records: list[asyncio.Task[None]] = []

        async def around(call: ToolUseBlock, execute) -> ToolResultBlock:
            started = time.monotonic()
            result = await self._tool(call, execute, resumed, records)
            finished[call.id] = ev.ToolResult(call.id, call.name, result.content, bool(result.is_error),
                                              time.monotonic() - started)
            return result

        try:
            results = await self.agent.runner.run(calls, self.id, around=around, workspace=self.agent.workspace,
                                                  gate=self._gate)
        except asyncio.CancelledError:
            await asyncio.gather(self._append(Message("user", [
                *(_answer(c, finished, c.id in self.claimed) for c in calls), *extra])), *records)
            raise
        await asyncio.gather(self._append(Message("user", [*results, *extra])), *records)
        for call in calls:
            yield finished[call.id]

    async def _tool(self, call: ToolUseBlock, execute, resumed: bool,
                    records: list[asyncio.Task[None]]) -> ToolResultBlock:
        """One call: what an earlier run recorded of it, the hooks, the call, the journal's record
        (a task added to ``records``)."""
        if resumed:
            claim = await self.journal.claim(call)
            if isinstance(claim, ToolResultBlock):
                return claim
            if claim == "interrupted" and not self.agent.runner.idempotent(call):
                return ToolResultBlock(call.id, INTERRUPTED, is_error=True)
            self.claimed.add(call.id)
        verdict = await self.agent.hooks.before_tool(call)
        if isinstance(verdict, Deny):
            return ToolResultBlock(call.id, f"Error: denied: {verdict.reason}", is_error=True)
        if isinstance(verdict, Modify):
            call = ToolUseBlock(call.id, call.name, verdict.input, extra=call.extra)
        result = await execute() if verdict is None else await self.agent.runner.run_one(
            call, ToolContext(self.id, call.id, workspace=self.agent.workspace, gate=self._gate))
        result = await self.agent.hooks.after_tool(call, result) or result
        if call.id in self.claimed:
            records.append(asyncio.ensure_future(self.journal.tool_finished(call, result)))
        return result

    async def _gate(self, call: ToolUseBlock) -> ToolOutput | None:
        """Claim ``call`` in the journal right before it runs: after validation and the permission
        policy, so a call refused or still awaiting approval is never recorded as started."""
        if call.id in self.claimed:
            return None
        claim = await self.journal.claim(call)
        self.claimed.add(call.id)
        if claim == "run":
            return None
        if isinstance(claim, ToolResultBlock):
            return ToolOutput(claim.content, bool(claim.is_error))  # type: ignore[arg-type]
        return ToolOutput(INTERRUPTED, True)


def combine(first: Message, second: Message) -> Message:
    return Message(first.role, [*first.content, *second.content])


def combined_turns(messages: Sequence[Message]) -> list[Message]:
    """``messages`` with consecutive user messages joined, as a run works with them."""
    out: list[Message] = []
    for message in messages:
        if out and message.role == "user" and out[-1].role == "user":
            out[-1] = combine(out[-1], message)
        else:
            out.append(message)
    return out


class _ContextFull(Exception):
    """The model stopped with model_context_window_exceeded: compact, then call again."""


def _answer(call: ToolUseBlock, finished: dict[str, ev.ToolResult], started: bool) -> ToolResultBlock:
    """The result of a call when its run is interrupted: what it returned, or how far it got."""
    done = finished.get(call.id)
    if done is None:
        return ToolResultBlock(call.id, INTERRUPTED if started else NOT_RUN, is_error=True)
    return ToolResultBlock(call.id, done.content, is_error=True if done.is_error else None)  # type: ignore[arg-type]


def _map(event: st.StreamEvent, names: dict[int, str]) -> ev.Event | None:
    match event:
        case st.TextDelta(text=text):
            return ev.TextDelta(text)
        case st.ThinkingDelta(thinking=thinking):
            return ev.ThinkingDelta(thinking)
        case st.BlockStart(index=index, block=ToolUseBlock(id=id, name=name)):
            names[index] = id
            return ev.ToolCallStarted(id, name)
        case st.InputJsonDelta(index=index, partial_json=piece):
            return ev.ToolInputDelta(names.get(index, ""), piece)
        case st.BlockStop(block=ToolUseBlock(id=id, name=name, input=input)):
            return ev.ToolCallFinished(id, name, input)
    return None


def _replay(content: list[ContentBlock]) -> list[ev.Event]:
    """The events a stream would have given, from a non-streamed response."""
    out: list[ev.Event] = []
    for block in content:
        if isinstance(block, TextBlock):
            out.append(ev.TextDelta(block.text))
        elif isinstance(block, ThinkingBlock):
            out.append(ev.ThinkingDelta(block.thinking))
        elif isinstance(block, ToolUseBlock):
            out += [ev.ToolCallStarted(block.id, block.name), ev.ToolInputDelta(block.id, dumps(block.input)),
                    ev.ToolCallFinished(block.id, block.name, block.input)]
    return out
