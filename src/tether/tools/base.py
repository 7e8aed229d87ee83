"""The ``Tool`` protocol, the ``@tool`` decorator, and what a tool call returns.

A tool tells the model what it is (``spec()``) and does its work in ``call()``. A tool that wants the
model to correct itself raises ``ToolError`` with a precise message; any other exception is turned
into an ``is_error`` result by the runner too, so a bad call never ends a run.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, get_type_hints, runtime_checkable

import docstring_parser
import pydantic

from tether.api.types import ImageBlock, Json, TextBlock, ToolSpec


class ToolError(Exception):
    """Raised by a tool: the message goes back to the model as an ``is_error`` result."""


@dataclass(slots=True)
class ToolOutput:
    content: str | list[TextBlock | ImageBlock]
    is_error: bool = False


@dataclass(slots=True)
class ToolContext:
    """What a tool knows about the call it serves."""

    run_id: str
    tool_use_id: str
    workspace: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Awaited by the runner once the call is valid and allowed, right before the tool runs; an
    # answer it returns is used instead of running the tool (the loop records the call here).
    gate: Callable[[Any], Awaitable[ToolOutput | None]] | None = None


@runtime_checkable
class Tool(Protocol):
    name: str
    input_schema: Json
    # The run waits for a call to finish alone, with no other tool running beside it.
    exclusive: bool
    # Seconds before the call is cancelled; None uses the runner's default.
    timeout: float | None
    # Safe to run again after a crash left its result unknown.
    idempotent: bool

    def spec(self) -> ToolSpec: ...

    async def call(self, input: Json, context: ToolContext) -> ToolOutput: ...


@dataclass
class FunctionTool:
    """A Python function as a tool; its parameters become the JSON schema."""

    function: Callable[..., Awaitable[Any] | Any]
    name: str
    description: str
    input_schema: Json
    exclusive: bool = False
    timeout: float | None = None
    idempotent: bool = False
    takes_context: bool = False

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, input_schema=self.input_schema)

    async def call(self, input: Json, context: ToolContext) -> ToolOutput:
        kwargs = dict(input, context=context) if self.takes_context else dict(input)
        result = self.function(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, ToolOutput):
            return result
        if isinstance(result, str | list):
            return ToolOutput(result)
        return ToolOutput(json.dumps(result, ensure_ascii=False) if isinstance(result, dict) else str(result))


def tool(
    function: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    exclusive: bool = False,
    timeout: float | None = None,
    idempotent: bool = False,
) -> Any:
    """Make a tool of a typed function. The docstring's summary describes it; its ``Args:`` its parameters.

    A parameter named ``context`` receives the ``ToolContext`` and is left out of the schema.
    """

    def build(fn: Callable[..., Any]) -> FunctionTool:
        doc = docstring_parser.parse(fn.__doc__ or "")
        schema, takes_context = _schema(fn, {p.arg_name: p.description or "" for p in doc.params})
        description = "\n\n".join(filter(None, [doc.short_description, doc.long_description]))
        return FunctionTool(
            fn, name or fn.__name__, description or fn.__name__, schema,
            exclusive=exclusive, timeout=timeout, idempotent=idempotent, takes_context=takes_context,
        )

    return build(function) if function is not None else build


def _schema(fn: Callable[..., Any], descriptions: dict[str, str]) -> tuple[Json, bool]:
    hints = get_type_hints(fn)
    fields: dict[str, Any] = {}
    takes_context = False
    for param in inspect.signature(fn).parameters.values():
        if param.name == "context":
            takes_context = True
            continue
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, pydantic.Field(default, description=descriptions.get(param.name) or None))
    model = pydantic.create_model(f"{fn.__name__}_input", **fields)
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    schema.setdefault("properties", {})
    return schema, takes_context
