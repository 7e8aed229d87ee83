"""The JSON bodies the API takes, validated (pydantic) with messages that name the field to fix.

Their JSON Schemas are the request schemas of the OpenAPI document (``openapi``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tether.server.errors import ServiceError, invalid

TOOLS = ("bash", "editor", "python")
Text = Annotated[str, StringConstraints(min_length=1, max_length=200_000)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100)]
ToolKey = Annotated[str, StringConstraints(pattern=r"^(\*|[A-Za-z0-9_.:-]{1,64})$")]
Mode = Literal["allow", "ask", "deny"]
M = TypeVar("M", bound=BaseModel)


def _whole(value: object) -> int:
    """JSON Schema's integer: a number without a fraction (9 or 9.0), never a boolean or a string."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise ValueError("must be a whole number")
    return int(value)


def whole(low: int, high: int) -> Any:
    return Annotated[int, Field(ge=low, le=high), pydantic.BeforeValidator(_whole)]


def number(low: float, high: float) -> Any:
    """An int or a float; not a boolean or a string."""
    return Annotated[float, Field(ge=low, le=high), pydantic.Strict()]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Limits(Body):
    """Limits of each execution of the run (its first task, then each follow-up)."""

    max_turns: whole(1, 10_000) | None = None
    max_tokens: whole(1, 1_000_000_000) | None = None
    max_dollars: number(0, 1_000_000) | None = None
    max_seconds: number(0, 86_400 * 7) | None = None


class RunCreate(Body):
    """A new run: a ``task``, or a ``session_id`` to continue (the task then is a follow-up)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["task"], "properties": {"task": {"type": "string"}}},
        {"required": ["session_id"], "properties": {"session_id": {"type": "string"}}}]})

    task: Text | None = None
    model: Name | None = None
    tools: list[Literal["bash", "editor", "python"]] = Field(default_factory=list, max_length=3)
    limits: Limits | None = None
    session_id: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    title: Annotated[str, StringConstraints(max_length=500)] | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    permissions: dict[ToolKey, Mode] = Field(default_factory=dict, max_length=20,
                                             description='tool name (or "*" for the rest) -> allow, ask or deny',
                                             json_schema_extra={"additionalProperties": False})

    @pydantic.model_validator(mode="after")
    def _task_or_session(self) -> RunCreate:
        if self.task is None and self.session_id is None:
            raise ValueError("give a task (or a session_id to continue)")
        return self


class MessageCreate(Body):
    text: Text


class ApprovalDecision(Body):
    decision: Literal["yes", "no", "always"]


class ForkRequest(Body):
    at: whole(1, 10_000_000) | None = Field(None, description="messages to keep (default: all)")


class TokenCreate(Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"\S")]
    scopes: list[Literal["read", "run", "admin"]] = Field(min_length=1, max_length=3)
    tenant: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]


def parse(model: type[M], raw: bytes) -> M:
    """``raw`` (a request body; empty means ``{}``) as ``model``, or a 400 that says what is wrong."""
    try:
        return model.model_validate_json(raw or b"{}")
    except pydantic.ValidationError as exc:
        raise invalid("; ".join(_describe(error) for error in exc.errors()[:5])) from None


def _describe(error: dict) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "body"
    if error.get("type") == "json_invalid":
        return "the body is not valid JSON"
    return f"{where}: {error.get('msg', 'invalid')}"


def too_large(limit: int) -> ServiceError:
    return ServiceError("validation_error", f"the request body is over {limit} bytes", status=413)
