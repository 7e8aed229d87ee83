"""A run's journal kept in a ``SessionStore``: what makes a run resumable after a crash.

Each whole message is appended (with the usage of the calls that made it) before anything acts on
it; each tool call is claimed in the ledger before it runs and its result recorded when it ends.
"""

from __future__ import annotations

from tether.agent.journal import Claim
from tether.api.types import Message, ToolResultBlock, ToolUseBlock, Usage
from tether.store.base import SessionStore, StoredMessage, TurnRecord

COMPACTION = "compaction"  # the session metadata key of the latest compaction
_STATUS = {"completed": "completed", "refusal": "completed", "system_error": "interrupted"}


class StoreJournal:
    def __init__(self, store: SessionStore, session_id: str, model: str, *, turns: int = 0,
                 next_seq: int = 0) -> None:
        self.store, self.session_id, self.model = store, session_id, model
        self.turns, self.next_seq = turns, next_seq

    async def appended(self, message: Message, usage: Usage | None, dollars: float) -> None:
        turn = None
        if usage is not None:
            self.turns += 1
            turn = TurnRecord(self.turns, self.model, usage.input_tokens, usage.output_tokens,
                              usage.cache_read_input_tokens, usage.cache_write_5m_tokens,
                              usage.cache_write_1h_tokens, dollars)
        stored = StoredMessage(self.next_seq, message.role, [b.to_wire() for b in message.content])
        await self.store.append(self.session_id, [stored], turn)
        self.next_seq += 1

    async def claim(self, call: ToolUseBlock) -> Claim:
        if await self.store.tool_started(self.session_id, call.id, call.name, call.input):
            return "run"
        entry = (await self.store.ledger(self.session_id))[call.id]
        if entry.status == "finished" and entry.result is not None:
            return ToolResultBlock.from_wire(entry.result)
        return "interrupted"

    async def tool_finished(self, call: ToolUseBlock, result: ToolResultBlock) -> None:
        await self.store.tool_finished(self.session_id, call.id, result.to_wire())

    async def compacted(self, summary: Message | None, kept: int, cleared: list[str]) -> None:
        info = await self.store.get(self.session_id)
        record = {"from_seq": self.next_seq - kept, "cleared": cleared,
                  "summary": summary.to_wire() if summary else None}
        await self.store.update(self.session_id, metadata={**(info.metadata if info else {}), COMPACTION: record})

    async def ended(self, outcome: str) -> None:
        await self.store.update(self.session_id, status=_STATUS.get(outcome, "failed"))
