"""A ``SessionStore`` in a dict, for benchmarks that measure everything but the database.

Only what a run uses (create, get, update, append, messages, turns, the ledger) is implemented;
it is not durable and not checked against the conformance suite. Each write yields to the event
loop once, as a database client would, so that runs interleave as they do over a real store.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace
from typing import Any

from tether.store.base import LedgerEntry, NotFound, SessionInfo, StoreConflict, StoredMessage, TurnRecord


class MemoryStore:
    def __init__(self) -> None:
        self.sessions: dict[str, SessionInfo] = {}
        self.messages_of: dict[str, list[StoredMessage]] = {}
        self.turns_of: dict[str, list[TurnRecord]] = {}
        self.ledgers: dict[str, dict[str, LedgerEntry]] = {}

    def _info(self, session_id: str) -> SessionInfo:
        if session_id not in self.sessions:
            raise NotFound(f"no session {session_id!r}")
        return self.sessions[session_id]

    async def create(self, session: SessionInfo) -> SessionInfo:
        await asyncio.sleep(0)
        if session.id in self.sessions:
            raise StoreConflict(session.id)
        now = dt.datetime.now(dt.UTC)
        self.sessions[session.id] = replace(session, created_at=now, updated_at=now)
        self.messages_of[session.id], self.turns_of[session.id], self.ledgers[session.id] = [], [], {}
        return self.sessions[session.id]

    async def get(self, session_id: str) -> SessionInfo | None:
        return self.sessions.get(session_id)

    async def update(self, session_id: str, **fields: Any) -> None:
        await asyncio.sleep(0)
        self.sessions[session_id] = replace(self._info(session_id), **fields)

    async def append(self, session_id: str, messages: list[StoredMessage], turn: TurnRecord | None = None) -> None:
        await asyncio.sleep(0)
        info, stored = self._info(session_id), self.messages_of[session_id]
        if messages and messages[0].seq != len(stored):
            raise StoreConflict(f"seq {messages[0].seq} is not next ({len(stored)})")
        stored.extend(messages)
        if turn is not None:
            self.turns_of[session_id].append(turn)
            self.sessions[session_id] = replace(
                info, turns=info.turns + 1, input_tokens=info.input_tokens + turn.input_tokens,
                output_tokens=info.output_tokens + turn.output_tokens, dollars=info.dollars + turn.dollars)

    async def messages(self, session_id: str) -> list[StoredMessage]:
        self._info(session_id)
        return list(self.messages_of[session_id])

    async def turns(self, session_id: str) -> list[TurnRecord]:
        return list(self.turns_of[session_id])

    async def tool_started(self, session_id: str, tool_use_id: str, name: str, input: Any) -> bool:
        await asyncio.sleep(0)
        ledger = self.ledgers[session_id]
        if tool_use_id in ledger:
            return False
        ledger[tool_use_id] = LedgerEntry(tool_use_id, name, input, "started")
        return True

    async def tool_finished(self, session_id: str, tool_use_id: str, result: Any) -> None:
        await asyncio.sleep(0)
        entry = self.ledgers[session_id][tool_use_id]
        if entry.status != "finished":
            entry.status, entry.result = "finished", result

    async def ledger(self, session_id: str) -> dict[str, LedgerEntry]:
        return dict(self.ledgers[session_id])

    async def close(self) -> None:
        pass
