"""Durable runs: an ``Agent`` whose conversation lives in a ``SessionStore``.

    sessions = Sessions(store)
    run = await sessions.new(agent, title="fix the tests")
    async for event in run.events("fix the tests"): ...
    # after a crash, in another process:
    run = await sessions.resume(agent, session_id)
    async for event in run.events(): ...          # finishes what was cut short
    async for event in run.events("and now?"): ...  # goes on with the conversation

A resumed run uses the recorded result of every tool call that finished; a call that started and
never finished is not run again (unless its tool is idempotent): the model is told it was
interrupted and may have had effects.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from tether.agent.compaction import clear
from tether.agent.loop import Agent, Run, combined_turns
from tether.api.types import Message, TextBlock, ThinkingBlock, ToolResultBlock, ToolUseBlock, dumps
from tether.errors import UserError
from tether.store.base import SessionInfo, SessionStore, StoredMessage
from tether.store.journal import COMPACTION, StoreJournal

EXPORT_VERSION = 1


class SessionNotFound(UserError):
    category = "not_found"


class Sessions:
    def __init__(self, store: SessionStore) -> None:
        self.store = store

    async def new(self, agent: Agent, *, title: str = "", tags: Sequence[str] = (),
                  session_id: str | None = None) -> Run:
        info = await self.store.create(SessionInfo(session_id or new_id(), agent.model_info.id, title, list(tags)))
        return agent.start(run_id=info.id, journal=StoreJournal(self.store, info.id, agent.model_info.id))

    async def resume(self, agent: Agent, session_id: str) -> Run:
        info = await self.get(session_id)
        stored = [to_message(m) for m in await self.store.messages(session_id)]
        journal = StoreJournal(self.store, session_id, agent.model_info.id, turns=info.turns, next_seq=len(stored))
        await self.store.update(session_id, status="running")
        run = agent.start(messages=combined_turns(working_context(stored, info.metadata.get(COMPACTION))),
                          run_id=session_id, journal=journal)
        run.cleared = set((info.metadata.get(COMPACTION) or {}).get("cleared", ()))
        return run

    async def get(self, session_id: str) -> SessionInfo:
        info = await self.store.get(session_id)
        if info is None:
            raise SessionNotFound(f"no session {session_id!r}; `tether sessions list` shows the sessions")
        return info

    async def fork(self, session_id: str, at: int | None = None) -> SessionInfo:
        """A new session sharing the first ``at`` messages (all of them by default)."""
        count = len(await self.store.messages(session_id))
        at = count if at is None else at
        if not 0 < at <= count:
            raise UserError(f"cannot fork session {session_id} at message {at}: it has messages 0..{count}")
        return await self.store.fork(session_id, at, new_id())

    async def export_json(self, session_id: str) -> str:
        info = await self.get(session_id)
        messages = await self.store.messages(session_id)
        return dumps({
            "version": EXPORT_VERSION,
            "session": {"id": info.id, "model": info.model, "title": info.title, "tags": info.tags,
                        "status": info.status, "metadata": info.metadata},
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "turns": [t.__dict__ for t in await self.store.turns(session_id)],
        })

    async def import_json(self, text: str, *, session_id: str | None = None) -> SessionInfo:
        try:
            data = json.loads(text)
            session, messages = data["session"], data["messages"]
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"not a tether session export: {exc}") from None
        info = await self.store.create(SessionInfo(session_id or new_id(), session["model"], session.get("title", ""),
                                                   list(session.get("tags", [])), status=session.get("status", "completed"),
                                                   metadata=session.get("metadata") or {}))
        stored = [StoredMessage(i, m["role"], m["content"]) for i, m in enumerate(messages)]
        if stored:
            await self.store.append(info.id, stored)
        return info

    async def adopt(self, agent: Agent, messages: Sequence[Message], *, title: str = "") -> Run:
        """A new session that starts from ``messages`` (a conversation saved elsewhere)."""
        info = await self.store.create(SessionInfo(new_id(), agent.model_info.id, title))
        stored = [StoredMessage(i, m.role, [b.to_wire() for b in m.content]) for i, m in enumerate(messages)]
        if stored:
            await self.store.append(info.id, stored)
        return await self.resume(agent, info.id)

    async def export_markdown(self, session_id: str) -> str:
        info = await self.get(session_id)
        lines = [f"# {info.title or info.id}", "", f"- session: `{info.id}`", f"- model: {info.model}",
                 f"- status: {info.status}", f"- cost: ${info.dollars:.4f} over {info.turns} turns", ""]
        for stored in await self.store.messages(session_id):
            lines += _markdown(to_message(stored))
        return "\n".join(lines)


def working_context(stored: list[Message], compaction: dict | None) -> list[Message]:
    """The conversation a run works with: the stored one, as its latest compaction left it."""
    if not compaction:
        return stored
    kept = clear(stored[compaction["from_seq"]:], set(compaction["cleared"]))
    summary = compaction.get("summary")
    return [Message.from_wire(summary), *kept] if summary else kept


def new_id() -> str:
    return f"ses_{uuid.uuid4().hex[:20]}"


def to_message(stored: StoredMessage) -> Message:
    return Message.from_wire({"role": stored.role, "content": stored.content})


def _markdown(message: Message) -> list[str]:
    out = [f"## {message.role}", ""]
    for block in message.content:
        if isinstance(block, TextBlock):
            out += [block.text, ""]
        elif isinstance(block, ThinkingBlock):
            out += ["<details><summary>thinking</summary>", "", block.thinking, "", "</details>", ""]
        elif isinstance(block, ToolUseBlock):
            out += [f"**tool call** `{block.name}` ({block.id})", "", "```json", json.dumps(block.input, indent=2),
                    "```", ""]
        elif isinstance(block, ToolResultBlock):
            text = block.content if isinstance(block.content, str) else "\n".join(
                getattr(b, "text", f"[{b.type}]") for b in block.content)
            label = "tool error" if block.is_error else "tool result"
            out += [f"**{label}** ({block.tool_use_id})", "", "```", text, "```", ""]
        else:
            out += [f"*[{block.type}]*", ""]
    return out
