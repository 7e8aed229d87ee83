"""Rows to dataclasses and back, and the JSON text the store keeps.

Content is stored as compact JSON text so that what comes back is what went in: key order, big
integers, unicode and signatures included.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from tether.api.types import dumps
from tether.store.base import LedgerEntry, SessionInfo, StoredMessage, TurnRecord


def to_json(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is, unless a lone surrogate forces ``\\u`` escapes."""
    text = dumps(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"))
    return text


def plain(text: str) -> str:
    """``text`` made safe for a TEXT column on any database: no NUL, no lone surrogates."""
    return text.encode("utf-8", "ignore").decode("utf-8").replace("\x00", "")


def session_values(info: SessionInfo) -> dict[str, Any]:
    return {
        "id": info.id, "title": info.title, "tags": to_json(info.tags), "model": info.model,
        "status": info.status, "parent_id": info.parent_id, "fork_seq": info.fork_seq,
        "created_at": info.created_at, "updated_at": info.updated_at,
        "turns": info.turns, "input_tokens": info.input_tokens, "output_tokens": info.output_tokens,
        "cache_read_tokens": info.cache_read_tokens, "cache_write_tokens": info.cache_write_tokens,
        "dollars": info.dollars, "metadata": to_json(info.metadata),
    }


def session_from_row(row: sa.Row[Any]) -> SessionInfo:
    m = row._mapping
    return SessionInfo(
        id=m["id"], model=m["model"], title=m["title"], tags=json.loads(m["tags"]), status=m["status"],
        parent_id=m["parent_id"], fork_seq=m["fork_seq"],
        created_at=m["created_at"], updated_at=m["updated_at"],
        turns=m["turns"], input_tokens=m["input_tokens"], output_tokens=m["output_tokens"],
        cache_read_tokens=m["cache_read_tokens"], cache_write_tokens=m["cache_write_tokens"],
        dollars=m["dollars"], metadata=json.loads(m["metadata"]),
    )


def message_from_row(row: sa.Row[Any]) -> StoredMessage:
    m = row._mapping
    return StoredMessage(seq=m["seq"], role=m["role"], content=json.loads(m["content"]),
                         created_at=m["created_at"])


def turn_values(turn: TurnRecord) -> dict[str, Any]:
    return {
        "turn": turn.turn, "model": turn.model,
        "input_tokens": turn.input_tokens, "output_tokens": turn.output_tokens,
        "cache_read_tokens": turn.cache_read_tokens,
        "cache_write_5m_tokens": turn.cache_write_5m_tokens,
        "cache_write_1h_tokens": turn.cache_write_1h_tokens,
        "dollars": turn.dollars,
    }


def turn_from_row(row: sa.Row[Any]) -> TurnRecord:
    m = row._mapping
    return TurnRecord(
        turn=m["turn"], model=m["model"], input_tokens=m["input_tokens"], output_tokens=m["output_tokens"],
        cache_read_tokens=m["cache_read_tokens"], cache_write_5m_tokens=m["cache_write_5m_tokens"],
        cache_write_1h_tokens=m["cache_write_1h_tokens"], dollars=m["dollars"],
    )


def ledger_from_row(row: sa.Row[Any]) -> LedgerEntry:
    m = row._mapping
    result = m["result"]
    return LedgerEntry(
        tool_use_id=m["tool_use_id"], name=m["name"], input=json.loads(m["input"]), status=m["status"],
        result=None if result is None else json.loads(result),
        started_at=m["started_at"], finished_at=m["finished_at"],
    )
