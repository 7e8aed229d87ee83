"""``/v1/sessions``: the store's sessions (search, read, fork, export, delete) and ``/v1/usage``.

A session started by the service belongs to the tenant of the token that started it: other
tenants' tokens do not see it (404, and absent from lists); admin tokens see every session.
Sessions made outside the service (``tether run``, batches) belong to no tenant and are visible
to every token with the ``read`` scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from typing import get_args

from starlette.responses import JSONResponse, PlainTextResponse, Response

from tether.server.bodies import ForkRequest
from tether.server.errors import ServiceError, conflict, not_found
from tether.server.manager import service_record
from tether.server.routing import Call, Operation, route
from tether.server.usage import usage
from tether.store.base import SessionInfo, SessionQuery, SessionStatus

ROUTES: list[Operation] = []
STATUSES: tuple[str, ...] = get_args(SessionStatus)  # the store's, whatever it adds
PAGE = 200


def tenant_of(info: SessionInfo) -> str | None:
    return service_record(info).get("config", {}).get("tenant")


def visible(call: Call, info: SessionInfo) -> bool:
    owner = tenant_of(info)
    return owner is None or owner == call.token.tenant or "admin" in call.token.scopes


def session_dict(info: SessionInfo) -> dict:
    record = service_record(info)
    return {
        "id": info.id, "title": info.title, "tags": info.tags, "model": info.model, "status": info.status,
        "parent_id": info.parent_id, "fork_seq": info.fork_seq,
        "created_at": info.created_at.isoformat() if info.created_at else None,
        "updated_at": info.updated_at.isoformat() if info.updated_at else None,
        "turns": info.turns, "tokens": {"input": info.input_tokens, "output": info.output_tokens,
                                        "cache_read": info.cache_read_tokens, "cache_write": info.cache_write_tokens},
        "dollars": info.dollars, "tenant": tenant_of(info), "run_id": record.get("run_id"),
    }


async def _session(call: Call) -> SessionInfo:
    info = await call.service.store.get(call.param("session_id"))
    if info is None or not visible(call, info):
        raise not_found(f"no session {call.param('session_id')!r}")
    return info


@route("GET", "/v1/sessions", scope="read", table=ROUTES)
async def list_sessions(call: Call) -> Response:
    limit = call.query_int("limit", 50, 1, 500)
    offset = call.query_int("offset", 0, 0, 1_000_000)
    query = SessionQuery(text=call.query("search", 200), tag=call.query("tag", 100),
                         status=call.query_choice("status", STATUSES), limit=limit, offset=offset)  # type: ignore[arg-type]
    if "admin" in call.token.scopes:
        found = await call.service.store.list(query)
    else:
        found = await _visible_page(call, query)
    return JSONResponse({"sessions": [session_dict(s) for s in found], "limit": limit, "offset": offset})


async def _visible_page(call: Call, query: SessionQuery) -> list[SessionInfo]:
    """``query``'s page, counting only the sessions this token may see."""
    wanted, skip, at, out = query.limit, query.offset, 0, []
    while len(out) < wanted:
        page = await call.service.store.list(SessionQuery(query.text, query.tag, query.status, limit=PAGE, offset=at))
        for info in page:
            if visible(call, info):
                if skip:
                    skip -= 1
                elif len(out) < wanted:
                    out.append(info)
        if len(page) < PAGE:
            break
        at += PAGE
    return out


@route("GET", "/v1/sessions/{session_id}", scope="read", table=ROUTES)
async def get_session(call: Call) -> Response:
    info = await _session(call)
    messages = await call.service.store.messages(info.id)
    return JSONResponse({**session_dict(info), "messages": [{"seq": m.seq, "role": m.role, "content": m.content}
                                                            for m in messages]})


@route("POST", "/v1/sessions/{session_id}/fork", scope="run", table=ROUTES)
async def fork_session(call: Call) -> Response:
    info = await _session(call)
    body = await call.body(ForkRequest)
    count = len(await call.service.store.messages(info.id))
    if body.at is not None and body.at > count:
        raise conflict(f"session {info.id} has {count} messages: fork it at 1 to {count}")
    child = await call.service.sessions.fork(info.id, body.at)
    return JSONResponse(session_dict(child), status_code=201, headers={"Location": f"/v1/sessions/{child.id}"})


@route("GET", "/v1/sessions/{session_id}/export", scope="read", table=ROUTES)
async def export_session(call: Call) -> Response:
    info = await _session(call)
    kind = call.query_choice("format", ("json", "markdown"), default="json")
    headers = {"Content-Disposition": f'attachment; filename="{info.id}.{"md" if kind == "markdown" else "json"}"'}
    if kind == "markdown":
        text = await call.service.sessions.export_markdown(info.id)
        return PlainTextResponse(text, media_type="text/markdown; charset=utf-8", headers=headers)
    text = await call.service.sessions.export_json(info.id)
    return Response(text, media_type="application/json", headers=headers)


@route("DELETE", "/v1/sessions/{session_id}", scope="admin", table=ROUTES)
async def delete_session(call: Call) -> Response:
    info = await _session(call)
    holder = call.service.manager.holder(info.id)
    if holder is not None and holder.active:
        raise conflict(f"session {info.id} is in use by run {holder.id} ({holder.status}): cancel the run first")
    call.service.manager.release(info.id)
    await call.service.store.delete(info.id)
    with contextlib.suppress(ServiceError):
        await asyncio.to_thread(shutil.rmtree, call.service.manager.workspace(info.id), True)
    return Response(status_code=204)


@route("GET", "/v1/usage", scope="read", table=ROUTES)
async def get_usage(call: Call) -> Response:
    by = call.query_choice("by", ("model", "day", "tenant"), default="model")
    tenant = None if "admin" in call.token.scopes else call.token.tenant
    rows = await usage(call.service.store, by=by, tenant=tenant)  # type: ignore[arg-type]
    total = {k: sum(r[k] for r in rows) for k in ("turns", "input_tokens", "output_tokens", "cache_read_tokens",
                                                  "cache_write_tokens", "dollars")}
    return JSONResponse({"by": by, "rows": rows, "total": total, "budgets": await budget_view(call, tenant)})


async def budget_view(call: Call, tenant: str | None) -> dict | None:
    """This month's budgets: the caller's tenant's, or for an admin every tenant's (None: no budgets set)."""
    budgets = call.service.budgets
    if budgets is None:
        return None
    if tenant is not None:
        return await budgets.view([tenant])
    tokens = await call.service.tokens.list()
    return await budgets.view(budgets.tenants() | {t.tenant for t in tokens if t.revoked_at is None})
