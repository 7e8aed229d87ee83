"""The smallest value a JSON Schema accepts, for a fake model calling a tool it knows nothing about."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 8


def example(schema: Mapping[str, Any], depth: int = 0) -> Any:
    """A value valid under ``schema`` for the common keywords (type, enum, const, required, bounds)."""
    if depth > MAX_DEPTH:
        return None
    for keyword in ("const", "default"):
        if keyword in schema:
            return schema[keyword]
    if schema.get("enum"):
        return schema["enum"][0]
    for keyword in ("anyOf", "oneOf", "allOf"):
        if schema.get(keyword):
            return example(schema[keyword][0], depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return _BY_TYPE.get(kind, _string)(schema, depth)


def _object(schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
    properties: Mapping[str, Any] = schema.get("properties") or {}
    names = schema.get("required") or list(properties)
    return {name: example(properties.get(name, {}), depth + 1) for name in names}


def _array(schema: Mapping[str, Any], depth: int) -> list[Any]:
    items = schema.get("items") if isinstance(schema.get("items"), Mapping) else {}
    return [example(items, depth + 1) for _ in range(max(1, schema.get("minItems", 1)))]


def _string(schema: Mapping[str, Any], depth: int) -> str:
    value = "example"
    minimum, maximum = schema.get("minLength", 0), schema.get("maxLength")
    value = value.ljust(minimum, "x")
    return value[:maximum] if maximum is not None else value


def _integer(schema: Mapping[str, Any], depth: int) -> int:
    if "minimum" in schema:
        return int(schema["minimum"])
    if "exclusiveMinimum" in schema:
        return int(schema["exclusiveMinimum"]) + 1
    return min(1, int(schema.get("maximum", 1)))


def _number(schema: Mapping[str, Any], depth: int) -> float:
    return float(_integer(schema, depth))


_BY_TYPE = {
    "object": _object,
    "array": _array,
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": lambda schema, depth: True,
    "null": lambda schema, depth: None,
}
