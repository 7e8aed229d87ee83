"""The errors the fake answers with, as exceptions its handlers raise (reference §4)."""

from __future__ import annotations

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
STATUS_OF_TYPE = {error_type: status for status, error_type in ERROR_TYPES.items()}


class APIFailure(Exception):
    """Answer the current request with ``status`` and the standard error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or ERROR_TYPES.get(status, "api_error")
        self.headers = headers or {}


def invalid(message: str) -> APIFailure:
    return APIFailure(400, message)


def not_found(message: str) -> APIFailure:
    return APIFailure(404, message)
