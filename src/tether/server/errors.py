"""The service's one error body, and the HTTP status each error category answers with.

Every failure, whatever raised it, reaches the client as::

    {"error": {"category": "not_found", "message": "no run 'run_x'", "request_id": "req_…"}}

``category`` is from tether's error vocabulary (``tether.errors``); clients branch on it and on
the status, never on the message. ``ServiceError`` is what handlers raise; ``from_exception``
turns anything else into one. A message never carries a secret: handlers build them from ids
and user input, and an unexpected exception's text is shown only with ``server.debug`` on.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse

from tether.errors import TetherError, UserError
from tether.store.base import NotFound, StoreConflict

CATEGORIES = ("validation_error", "tool_error", "system_error", "api_error", "rate_limited",
              "budget_exhausted", "not_found", "unauthorized", "forbidden")

STATUS = {
    "validation_error": 400,
    "tool_error": 500,
    "system_error": 500,
    "api_error": 502,
    "rate_limited": 429,
    "budget_exhausted": 402,
    "not_found": 404,
    "unauthorized": 401,
    "forbidden": 403,
}


class ServiceError(Exception):
    """A failure to report with ``category``; ``status`` defaults to the category's."""

    def __init__(self, category: str, message: str, *, status: int | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        assert category in STATUS, category
        super().__init__(message)
        self.category = category
        self.message = message
        self.status = status or STATUS[category]
        self.headers = dict(headers or {})


def not_found(what: str) -> ServiceError:
    return ServiceError("not_found", what)


def invalid(message: str) -> ServiceError:
    return ServiceError("validation_error", message)


def conflict(message: str) -> ServiceError:
    """The request is valid but the resource is not in a state to take it (HTTP 409)."""
    return ServiceError("validation_error", message, status=409)


def unavailable(message: str) -> ServiceError:
    return ServiceError("system_error", message, status=503, headers={"Retry-After": "5"})


def from_exception(exc: BaseException, *, debug: bool = False) -> ServiceError:
    """The error to report for ``exc``: its own category where it has one."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, NotFound):
        return ServiceError("not_found", str(exc))
    if isinstance(exc, StoreConflict):
        return conflict(str(exc))
    category = getattr(exc, "category", None)
    if isinstance(exc, TetherError) and category in STATUS:
        return ServiceError(category, str(exc))
    if isinstance(exc, UserError):
        return ServiceError("validation_error", str(exc))
    detail = f": {type(exc).__name__}: {exc}" if debug else ""
    return ServiceError("system_error", f"internal error; the service log has the details under this "
                                        f"request id{detail}")


def error_response(error: ServiceError, request_id: str) -> JSONResponse:
    body = {"error": {"category": error.category, "message": error.message, "request_id": request_id}}
    return JSONResponse(body, status_code=error.status, headers=error.headers)
