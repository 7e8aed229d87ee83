"""The OpenAPI 3.1 document of the service (``GET /openapi.json``), written out by hand.

Request bodies take their schemas from the pydantic models that validate them (``bodies``), so
the two cannot drift; responses are described here. ``tests/server`` checks that every route of
the app is in the document and runs schemathesis against it.
"""

from __future__ import annotations

import functools
from typing import Any, get_args

from pydantic import BaseModel

from tether.api.catalog import Catalog
from tether.server import bodies
from tether.server.errors import CATEGORIES
from tether.server.runs import STATUSES
from tether.store.base import SessionStatus

VERSION = "1.0.0"
REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or list(properties), **extra}


STR, INT, NUM, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
NULL_STR = {"type": ["string", "null"]}
TIME = {"type": ["string", "null"], "format": "date-time"}
TOKENS = _obj({"input": INT, "output": INT, "cache_read": INT, "cache_write": INT})

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({"category": {"type": "string", "enum": list(CATEGORIES)}, "message": STR,
                                  "request_id": STR})}),
    "RunAccepted": _obj({"id": STR, "session_id": STR, "status": {"type": "string", "enum": list(STATUSES)}}),
    "Outcome": {"type": ["object", "null"], "properties": {
        "spec_id": NULL_STR, "session_id": STR, "outcome": STR, "text": STR, "turns": INT, "input_tokens": INT,
        "output_tokens": INT, "cache_read_tokens": INT, "cache_write_tokens": INT, "dollars": NUM,
        "error": NULL_STR}},
    "Approval": _obj({"tool_use_id": STR, "name": STR, "input": {}, "requested_at": STR}),
    "Run": _obj({
        "id": STR, "session_id": STR, "tenant": STR, "status": {"type": "string", "enum": list(STATUSES)},
        "task": {"type": ["string", "null"], "description": "what the run was started with (null: it took up a "
                                                             "session without a task)"},
        "title": NULL_STR, "model": NULL_STR, "tools": {"type": "array", "items": STR},
        "tags": {"type": "array", "items": STR}, "created_at": STR, "updated_at": STR, "turns": INT,
        "tokens": TOKENS, "dollars": NUM, "outcome": _ref("Outcome"),
        "pending_approvals": {"type": "array", "items": _ref("Approval")}, "last_event_id": INT}),
    "RunList": _obj({"runs": {"type": "array", "items": _ref("Run")}}),
    "ApprovalList": _obj({"approvals": {"type": "array", "items": _ref("Approval")}}),
    "DecisionResult": _obj({"tool_use_id": STR, "decision": STR, "status": STR}),
    "Session": _obj({
        "id": STR, "title": STR, "tags": {"type": "array", "items": STR}, "model": STR, "status": STR,
        "parent_id": NULL_STR, "fork_seq": {"type": ["integer", "null"]}, "created_at": TIME, "updated_at": TIME,
        "turns": INT, "tokens": TOKENS, "dollars": NUM, "tenant": NULL_STR, "run_id": NULL_STR}),
    "Message": _obj({"seq": INT, "role": STR, "content": {"type": "array", "items": {"type": "object"}}}),
    "SessionList": _obj({"sessions": {"type": "array", "items": _ref("Session")}, "limit": INT, "offset": INT}),
    "UsageRow": _obj({"key": NULL_STR, "turns": INT, "input_tokens": INT, "output_tokens": INT,
                      "cache_read_tokens": INT, "cache_write_tokens": INT, "dollars": NUM}),
    "Token": _obj({"id": STR, "name": STR, "tenant": STR, "scopes": {"type": "array", "items": STR},
                   "created_at": TIME, "revoked_at": TIME}),
    "Ready": _obj({"status": {"type": "string", "enum": ["ready", "not_ready"]},
                   "reasons": {"type": "array", "items": STR}, "store": STR,
                   "fleet": _obj({"queued": INT, "running": INT, "concurrency": INT}),
                   "circuits": {"type": "object", "additionalProperties": STR}}),
}
SCHEMAS["SessionDetail"] = {"allOf": [_ref("Session"), _obj({"messages": {"type": "array",
                                                                          "items": _ref("Message")}})]}
SCHEMAS["Budgets"] = {
    "type": ["object", "null"], "required": ["period", "renews_at", "tenants"],
    "description": "each tenant's dollars this calendar month (UTC), from [server.budgets]; null when none is set",
    "properties": {"period": {"type": "string", "description": "the month, YYYY-MM"}, "renews_at": STR,
                   "tenants": {"type": "array", "items": _obj({
                       "tenant": STR, "limit": {"type": ["number", "null"], "description": "null: no limit"},
                       "spent": NUM, "remaining": {"type": ["number", "null"]}, "exhausted": BOOL})}}}
SCHEMAS["Usage"] = _obj({"by": STR, "rows": {"type": "array", "items": _ref("UsageRow")},
                         "total": {"type": "object", "additionalProperties": NUM}, "budgets": _ref("Budgets")})
SCHEMAS["TokenList"] = _obj({"tokens": {"type": "array", "items": _ref("Token")}})
SCHEMAS["TokenCreated"] = {"allOf": [_ref("Token"), _obj({"token": {"type": "string",
                                                                    "description": "shown once"}})]}

REQUESTS: tuple[type[BaseModel], ...] = (bodies.RunCreate, bodies.MessageCreate, bodies.ApprovalDecision,
                                         bodies.ForkRequest, bodies.TokenCreate)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(model.__name__)}}}


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


RUN_ID = _path("run_id", "the run's id")
SESSION_ID = _path("session_id", "the session's id")
EVENTS = {"description": "the run's events as Server-Sent Events: `id` (a number per run), `event` (the event's "
                         "type) and `data` (its JSON); `gap` and `shutdown` events have no id",
          "content": {"text/event-stream": {"schema": _obj(
              {"id": {"type": "string", "pattern": "^[0-9]+$"}, "event": STR,
               "data": {"type": "string", "contentMediaType": "application/json"}}, ["event", "data"])}}}


def _op(summary: str, scope: str | None, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    op = {"summary": summary + (f" (scope: {scope})" if scope else " (no auth)"), "responses": {
        **responses, "default": _json(_ref("Error"), "an error, in the one error body")}, **extra}
    if scope is None:
        op["security"] = []
    return op


def _paths() -> dict[str, Any]:
    accepted = {"202": _json(_ref("RunAccepted"), "accepted")}
    run = {"200": _json(_ref("Run"), "the run")}
    return {
        "/healthz": {"get": _op("liveness", None, {"200": _json(_obj({"status": STR}), "alive")})},
        "/readyz": {"get": _op("readiness", "read", {"200": _json(_ref("Ready"), "ready"),
                                                     "503": _json(_ref("Ready"), "not ready, with reasons")})},
        "/metrics": {"get": _op("Prometheus metrics", "read", {"200": {
            "description": "text exposition format", "content": {"text/plain": {"schema": STR}}}})},
        "/openapi.json": {"get": _op("this document", "read", {"200": _json({"type": "object"}, "OpenAPI 3.1")})},
        "/v1/config": {"get": _op("the effective configuration, secrets masked", "admin",
                                  {"200": _json({"type": "object"}, "settings")})},
        "/v1/runs": {
            "post": _op("start a run", "run", accepted, requestBody=_body(bodies.RunCreate)),
            "get": _op("active and recent runs", "read", {"200": _json(_ref("RunList"), "runs")}, parameters=[
                _query("status", {"type": "string", "enum": list(STATUSES)}, "only runs in this status"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most this many")]),
        },
        "/v1/runs/{run_id}": {"get": _op("a run", "read", run, parameters=[RUN_ID])},
        "/v1/runs/{run_id}/cancel": {"post": _op("end the run", "run", run, parameters=[RUN_ID])},
        "/v1/runs/{run_id}/interrupt": {"post": _op("stop the current turn; the run rests idle", "run", run,
                                                    parameters=[RUN_ID])},
        "/v1/runs/{run_id}/messages": {"post": _op("a follow-up message", "run", accepted, parameters=[RUN_ID],
                                                   requestBody=_body(bodies.MessageCreate))},
        "/v1/runs/{run_id}/approvals": {"get": _op("tool calls waiting for approval", "read",
                                                   {"200": _json(_ref("ApprovalList"), "pending")},
                                                   parameters=[RUN_ID])},
        "/v1/runs/{run_id}/approvals/{tool_use_id}": {"post": _op(
            "decide a pending tool call", "run", {"200": _json(_ref("DecisionResult"), "decided")},
            parameters=[RUN_ID, _path("tool_use_id", "the tool call's id")],
            requestBody=_body(bodies.ApprovalDecision))},
        "/v1/runs/{run_id}/events": {"get": _op(
            "the run's events, live, resumable with Last-Event-ID", "read",
            {"200": EVENTS, "204": {"description": "the run rests and the reader has every event"}},
            parameters=[RUN_ID, {"name": "Last-Event-ID", "in": "header", "required": False,
                                 "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"}},
                        _query("last_event_id", {"type": "string", "pattern": "^[0-9]{1,12}$"},
                               "for clients that cannot set the header")])},
        "/v1/sessions": {"get": _op("search sessions", "read", {"200": _json(_ref("SessionList"), "sessions")},
                                    parameters=[
            _query("search", {"type": "string", "minLength": 1, "maxLength": 200}, "text in titles or messages"),
            _query("tag", {"type": "string", "minLength": 1, "maxLength": 100}, "sessions with this tag"),
            _query("status", {"type": "string", "enum": list(get_args(SessionStatus))}, ""),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, ""),
            _query("offset", {"type": "integer", "minimum": 0, "maximum": 1000000}, "")])},
        "/v1/sessions/{session_id}": {
            "get": _op("a session with its messages", "read", {"200": _json(_ref("SessionDetail"), "the session")},
                       parameters=[SESSION_ID]),
            "delete": _op("delete a session", "admin", {"204": {"description": "deleted"}}, parameters=[SESSION_ID]),
        },
        "/v1/sessions/{session_id}/fork": {"post": _op(
            "a new session sharing a prefix of this one", "run", {"201": _json(_ref("Session"), "the fork")},
            parameters=[SESSION_ID], requestBody=_body(bodies.ForkRequest, required=False))},
        "/v1/sessions/{session_id}/export": {"get": _op(
            "a session as lossless JSON or a Markdown transcript", "read", {"200": {
                "description": "the export", "content": {"application/json": {"schema": {"type": "object"}},
                                                         "text/markdown": {"schema": STR}}}},
            parameters=[SESSION_ID, _query("format", {"type": "string", "enum": ["json", "markdown"]}, "")])},
        "/v1/usage": {"get": _op("dollars and tokens; the month's budgets", "read",
                                 {"200": _json(_ref("Usage"), "usage")},
                                 parameters=[_query("by", {"type": "string", "enum": ["model", "day", "tenant"]},
                                                    "")])},
        "/v1/tokens": {
            "get": _op("service tokens", "admin", {"200": _json(_ref("TokenList"), "tokens")}),
            "post": _op("make a token (its text is shown once)", "admin",
                        {"201": _json(_ref("TokenCreated"), "the token")}, requestBody=_body(bodies.TokenCreate)),
        },
        "/v1/tokens/{token_id}": {"delete": _op("revoke a token", "admin", {"200": _json(_ref("Token"), "revoked")},
                                                parameters=[_path("token_id", "the token's id")])},
    }


def _request_schemas() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in REQUESTS:
        schema = model.model_json_schema(ref_template=REF)
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    models = sorted({name for info in Catalog.load().models.values() if info.status != "retired"
                     for name in (info.id, *info.aliases)})
    out["RunCreate"]["properties"]["model"] = {
        "anyOf": [{"type": "string", "enum": models}, {"type": "null"}], "default": None,
        "description": "a model of tether's catalog (more can be added under [models] in tether.toml)"}
    return out


@functools.cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "tether", "version": VERSION,
                 "description": "Run Claude agents, watch their events, steer them. Every failure has the body "
                                "`{\"error\": {\"category\", \"message\", \"request_id\"}}` and every response an "
                                "`X-Request-ID` header."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {"schemas": {**SCHEMAS, **_request_schemas()},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "a service token, tth_<id>_<secret>"}}},
    }


def query_parameters() -> dict[tuple[str, str], set[str]]:
    """The query parameters the document gives each (method, path): the only ones the routes take."""
    return {(method.upper(), path): {p["name"] for p in op.get("parameters", ()) if p["in"] == "query"}
            for path, item in document()["paths"].items() for method, op in item.items()}
