"""tether's one error hierarchy, split by who must act.

    TetherError
    ├── UserError                  the developer or operator must fix something
    │   ├── ConfigError            bad settings, bad catalog overrides
    │   ├── MissingCredentialsError no API key
    │   ├── ModelRetiredError      the model can no longer be called
    │   └── RequestError           a request tether refuses to send (max_tokens over the model's limit, ...)
    ├── APIError                   the Messages API answered with an error
    │   ├── APIStatusError         an HTTP error status, or an `event: error` in a stream (status 200)
    │   └── APIConnectionError     no answer: connection refused, reset, timed out, stream cut
    └── RunError                   a run ended without finishing its task; carries the partial result
        ├── LimitExceeded          max turns, tokens, dollars or wall time
        ├── RefusalError           the model refused (stop_reason "refusal")
        ├── ContextWindowExceeded  the conversation no longer fits the model's context window
        └── RunInterrupted         the run was cancelled

Every error has a ``category`` from the service's error vocabulary, so callers never parse messages.
"""

from __future__ import annotations

from typing import Any


class TetherError(Exception):
    category = "system_error"


class UserError(TetherError):
    category = "validation_error"


class ConfigError(UserError):
    pass


class MissingCredentialsError(UserError):
    pass


class ModelRetiredError(UserError):
    def __init__(self, message: str, *, model: str, successor: str | None) -> None:
        super().__init__(message)
        self.model = model
        self.successor = successor


class RequestError(UserError):
    pass


class APIError(TetherError):
    category = "api_error"


class APIStatusError(APIError):
    """The API answered with ``status_code`` and an error body of type ``error_type``."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error_type: str,
        request_id: str | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type
        self.request_id = request_id
        self.retry_after = retry_after
        self.should_retry = should_retry

    @property
    def category(self) -> str:  # type: ignore[override]
        return "rate_limited" if self.status_code == 429 else "api_error"

    @property
    def retryable(self) -> bool:
        if self.should_retry is not None:
            return self.should_retry
        if self.status_code == 200:  # an `event: error` inside a stream
            return self.error_type in {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
        return self.status_code in {408, 409, 429} or self.status_code >= 500


class APIConnectionError(APIError):
    retryable = True


class RunError(TetherError):
    """A run ended early. ``result`` holds what the run produced until then."""

    def __init__(self, message: str, *, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class LimitExceeded(RunError):
    category = "budget_exhausted"

    def __init__(self, message: str, *, limit: str, result: Any = None) -> None:
        super().__init__(message, result=result)
        self.limit = limit


class RefusalError(RunError):
    category = "api_error"

    def __init__(self, message: str, *, refusal_category: str | None, result: Any = None) -> None:
        super().__init__(message, result=result)
        self.refusal_category = refusal_category


class ContextWindowExceeded(RunError):
    category = "api_error"


class RunInterrupted(RunError):
    category = "system_error"
