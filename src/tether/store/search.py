"""Finding sessions: the text a message is searched by, and the ``list`` query.

Search is a case-insensitive substring match (``LIKE``; case folding is ASCII-only on SQLite) over
a session's title and the text of its own messages: ``text`` blocks and the text inside
``tool_result`` blocks. Thinking, tool inputs and a fork's inherited prefix are not searched.
Sessions come newest first by ``updated_at``, which is also what ``since`` and ``until`` bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from tether.api.types import Json
from tether.store.base import SessionQuery
from tether.store.rows import plain
from tether.store.schema import messages, sessions


def message_text(content: list[Json]) -> str:
    """The searchable text of a message's blocks, one block a line."""
    return plain("\n".join(_texts(content)))


def _texts(blocks: Any) -> Iterator[str]:
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            yield block["text"]
        elif block.get("type") == "tool_result":
            inner = block.get("content")
            if isinstance(inner, str):
                yield inner
            else:
                yield from _texts(inner)


def list_statement(query: SessionQuery, dialect: str) -> sa.Select[Any]:
    stmt = sa.select(sessions)
    if query.text:
        in_messages = sa.exists().where(
            messages.c.session_id == sessions.c.id,
            messages.c.text.icontains(query.text, autoescape=True),
        )
        stmt = stmt.where(sa.or_(sessions.c.title.icontains(query.text, autoescape=True), in_messages))
    if query.tag is not None:
        stmt = stmt.where(_has_tag(query.tag, dialect))
    if query.status is not None:
        stmt = stmt.where(sessions.c.status == query.status)
    if query.since is not None:
        stmt = stmt.where(sessions.c.updated_at >= query.since)
    if query.until is not None:
        stmt = stmt.where(sessions.c.updated_at < query.until)
    order = (sessions.c.updated_at.desc(), sessions.c.id.desc())
    return stmt.order_by(*order).limit(query.limit).offset(query.offset)


def _has_tag(tag: str, dialect: str) -> sa.ColumnElement[bool]:
    """Whether the session's JSON ``tags`` array holds ``tag``, exactly."""
    if dialect == "postgresql":
        wanted = sa.func.jsonb_build_array(sa.cast(sa.literal(tag), sa.Text))
        return sa.cast(sessions.c.tags, JSONB).op("@>")(wanted)
    elements = sa.func.json_each(sessions.c.tags).table_valued("value")
    return sa.exists().where(elements.c.value == tag)
