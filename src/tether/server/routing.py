"""Routes as small handlers: each names its method, path and scope, and gets a checked ``Call``.

    @route("POST", "/v1/runs/{run_id}/cancel", scope="run")
    async def cancel(call: Call) -> Response: ...

``Call`` carries the request, the ``Service`` and the caller's token (the auth check is done
before the handler runs, and before any body is read). ``RequestContext`` is the outer ASGI
middleware: a request id on every response (``X-Request-ID``; a well-formed one sent by the
client is kept), the one error body for anything raised, and one access-log line per request:
method, path (never the query string or any header), status, milliseconds and request id.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tether.server.bodies import parse, too_large
from tether.server.errors import ServiceError, error_response, from_exception, invalid
from tether.server.tokens import ServiceToken

access = logging.getLogger("tether.server.access")
log = logging.getLogger("tether.server")
M = TypeVar("M", bound=BaseModel)
Handler = Callable[["Call"], Awaitable[Response]]
REQUEST_ID = "tether.request_id"
_GOOD_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass
class Call:
    request: Request
    service: Any  # tether.server.service.Service (not imported: it imports the routes' modules)
    token: ServiceToken

    def param(self, name: str) -> str:
        return self.request.path_params[name]

    def query(self, name: str, max_length: int = 200) -> str | None:
        """A query parameter; absent is None, and an empty or over-long one is refused."""
        raw = self.request.query_params.get(name)
        if raw is not None and not 0 < len(raw) <= max_length:
            raise invalid(f"{name} must be 1-{max_length} characters")
        return raw

    def query_int(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.query(name, 20)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise invalid(f"{name} must be a whole number, not {raw!r}") from None
        if not low <= value <= high:
            raise invalid(f"{name} must be between {low} and {high}")
        return value

    def query_choice(self, name: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        raw = self.query(name, 40)
        if raw is not None and raw not in choices:
            raise invalid(f"{name} must be one of {', '.join(choices)}")
        return default if raw is None else raw

    async def body(self, model: type[M]) -> M:
        limit = self.service.options.max_body
        declared = self.request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large(limit)
        raw = bytearray()
        async for chunk in self.request.stream():
            raw += chunk
            if len(raw) > limit:
                raise too_large(limit)
        return parse(model, bytes(raw))


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    scope: str | None
    handler: Handler


def route(method: str, path: str, *, scope: str | None, table: list[Operation]) -> Callable[[Handler], Handler]:
    """Register ``handler`` in ``table``; ``scope`` None: a public route."""
    def register(handler: Handler) -> Handler:
        table.append(Operation(method, path, scope, handler))
        return handler

    return register


def starlette_routes(operations: Iterable[Operation], queries: dict[tuple[str, str], set[str]]) -> list[Route]:
    """One Starlette route per path, dispatching on the method (so a 405 lists every allowed method).

    ``queries`` names the query parameters of each (method, path); any other is refused (400), so
    that a misspelt filter is an error rather than a silently wider answer.
    """
    by_path: dict[str, dict[str, Operation]] = {}
    for op in operations:
        by_path.setdefault(op.path, {})[op.method] = op
    return [_route(path, ops, queries) for path, ops in by_path.items()]


def _route(path: str, ops: dict[str, Operation], queries: dict[tuple[str, str], set[str]]) -> Route:
    async def endpoint(request: Request) -> Response:
        op = ops["GET" if request.method == "HEAD" else request.method]
        service = request.app.state.service
        token = await service.auth.check(request.headers, op.scope) if op.scope else None
        if unknown := set(request.query_params) - queries.get((op.method, op.path), set()):
            known = ", ".join(sorted(queries.get((op.method, op.path), ()))) or "none"
            raise invalid(f"unknown query parameter(s) {', '.join(sorted(unknown))[:200]}; known: {known}")
        return await op.handler(Call(request, service, token))  # type: ignore[arg-type]

    return Route(path, endpoint, methods=list(ops), name=path)


def request_id(scope: Scope) -> str:
    return scope.get(REQUEST_ID, "")


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no such route) and 405 (wrong method), in the one error body."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = ServiceError("not_found", f"no route {request.url.path}")
    elif exc.status_code == 405:
        error = ServiceError("validation_error", f"{request.method} is not allowed on {request.url.path}",
                             status=405, headers=dict(exc.headers or {}))
    else:
        error = ServiceError("validation_error", str(exc.detail), status=exc.status_code)
    return error_response(error, request_id(request.scope))


class RequestContext:
    def __init__(self, app: ASGIApp, *, debug: bool = False) -> None:
        self.app, self.debug = app, debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if given and _GOOD_ID.fullmatch(given) else f"req_{uuid.uuid4().hex[:20]}"
        scope[REQUEST_ID] = rid
        started, status = False, 500
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                message = {**message, "headers": [*message.get("headers", ()), (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            error = from_exception(exc, debug=self.debug)
            if error.status >= 500:
                log.exception("request %s %s failed (request id %s)", scope["method"], scope["path"], rid)
            if not started:
                await error_response(error, rid)(scope, receive, send_with_id)
        finally:
            access.info("%s %s %s %.1fms %s", scope["method"], scope["path"], status,
                        (time.perf_counter() - began) * 1000, rid)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
