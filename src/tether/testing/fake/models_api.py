"""``GET /v1/models`` and ``GET /v1/models/{id}``, built from tether's model catalog (reference §1.1).

Newest first; retired models are listed only when ``lifecycle[]=retired`` is asked for, and can
still be retrieved by id. Pagination: ``limit`` (default 20, 1..1000), ``after_id`` / ``before_id``;
the page carries ``data``, ``has_more``, ``first_id`` and ``last_id``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from tether.api.catalog import Catalog, ModelInfo
from tether.testing.fake.errors import invalid, not_found

DEFAULT_LIFECYCLES = ("active", "deprecated")
EPOCH = "1970-01-01T00:00:00Z"


def _stamp(day: dt.date | None) -> str | None:
    return None if day is None else f"{day.isoformat()}T00:00:00Z"


def _support(value: bool) -> dict[str, bool]:
    return {"supported": value}


def capabilities(info: ModelInfo) -> dict[str, Any]:
    adaptive = info.thinking == "adaptive"
    effort = adaptive or info.line == "opus"
    levels = {level: _support(effort) for level in ("low", "medium", "high", "max")}
    return {
        "batch": _support(True),
        "citations": _support(True),
        "code_execution": _support(True),
        "context_management": {
            "supported": True,
            "clear_thinking_20251015": _support(info.thinking != "none"),
            "clear_tool_uses_20250919": _support(True),
            "compact_20260112": _support(adaptive),
        },
        "effort": {"supported": effort, **levels, "xhigh": _support(effort and adaptive)},
        "image_input": _support(True),
        "pdf_input": _support(True),
        "server_tools": {"supported": True, "code_execution": _support(True), "web_search": _support(True)},
        "structured_outputs": _support(True),
        "thinking": {
            "supported": info.thinking != "none",
            "types": {
                "adaptive": _support(adaptive),
                "between_tools": _support(adaptive),
                "disabled": _support(info.can_disable),
                "enabled": _support(info.thinking != "none" and info.budget_allowed),
            },
        },
    }


def model_object(info: ModelInfo) -> dict[str, Any]:
    return {
        "type": "model",
        "id": info.id,
        "display_name": info.display_name,
        "created_at": _stamp(info.released) or EPOCH,
        "lifecycle": info.status,
        "deprecated_at": None,
        "retires_at": _stamp(info.retires_at),
        "line": info.line if info.line != "unknown" else None,
        "max_input_tokens": info.context_window,
        "max_tokens": info.max_output,
        "capabilities": capabilities(info),
    }


def newest_first(catalog: Catalog) -> list[ModelInfo]:
    return sorted(catalog, key=lambda info: info.released or dt.date.min, reverse=True)


def retrieve(catalog: Catalog, model_id: str) -> dict[str, Any]:
    for info in catalog:
        if model_id == info.id or model_id in info.aliases:
            return model_object(info)
    raise not_found(f"model: {model_id}")


def list_page(catalog: Catalog, query: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    lifecycles = (
        tuple(query.get("lifecycle[]", ())) or tuple(query.get("lifecycle", ())) or DEFAULT_LIFECYCLES
    )
    models = [m for m in newest_first(catalog) if m.status in lifecycles]
    limit = _limit(query)
    ids = [m.id for m in models]
    after, before = _one(query, "after_id"), _one(query, "before_id")
    if before is not None:
        end = _position(ids, before)
        start = max(0, end - limit)
        page, has_more = models[start:end], start > 0
    else:
        start = _position(ids, after) + 1 if after is not None else 0
        page, has_more = models[start : start + limit], start + limit < len(models)
    data = [model_object(m) for m in page]
    return {
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def _one(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _limit(query: Mapping[str, Sequence[str]]) -> int:
    raw = _one(query, "limit")
    try:
        limit = 20 if raw is None else int(raw)
    except ValueError:
        raise invalid("limit: Input should be a valid integer") from None
    if not 1 <= limit <= 1000:
        raise invalid("limit: Input should be between 1 and 1000")
    return limit


def _position(ids: list[str], model_id: str) -> int:
    try:
        return ids.index(model_id)
    except ValueError:
        raise invalid(f"Invalid cursor: {model_id}") from None
