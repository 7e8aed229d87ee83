"""Checking a tool call's input against the tool's JSON Schema, quickly when the schema allows it.

The authority is ``jsonschema``'s draft 2020-12 validator: its errors are what the model is told.
It costs ~50 µs for a text-editor call, most of it building error objects for the ``if`` branches
that do not apply. A schema written only with keywords that draft 7 and draft 2020-12 mean the same
by (the built-in tools' are) is also compiled to Python by ``fastjsonschema`` (~5 µs). An input the
compiled check accepts, the full validator accepts too; one it refuses goes to the full validator,
which decides (and explains). So the compiled check only ever skips work, never changes an answer.

Compiling takes milliseconds and a code object; every run of a fleet makes its own tools, so a check
is made once per schema (``input_check``) and shared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

import fastjsonschema
import jsonschema

# Keywords whose schemas are checked recursively, and those that take plain values: together the
# keywords draft 7 and draft 2020-12 give the same meaning. Not here: $ref and $defs (resolved
# differently), the array form of items (prefixItems in 2020-12), dependencies, unevaluated*.
_SUBSCHEMA = {"not", "if", "then", "else", "items", "additionalProperties"}
_SUBSCHEMA_LISTS = {"allOf", "anyOf", "oneOf"}
_VALUES = {
    "type", "required", "minItems", "maxItems", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minLength", "maxLength", "pattern", "format", "minProperties", "maxProperties",
    "title", "description", "default", "examples", "$comment", "readOnly", "writeOnly", "deprecated",
}


class InputCheck:
    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._full = jsonschema.Draft202012Validator(schema)
        self._fast: Callable[[Any], Any] | None = None
        if _portable(schema):
            try:
                self._fast = fastjsonschema.compile(dict(schema))
            except (fastjsonschema.JsonSchemaDefinitionException, re.error):  # a broken schema: jsonschema's to judge
                pass

    def errors(self, instance: Any) -> list[jsonschema.ValidationError]:
        """The input's errors, in the order of their paths; none if it is valid."""
        if self._fast is not None:
            try:
                self._fast(instance)
                return []
            except fastjsonschema.JsonSchemaException:
                pass  # the full validator decides
        return sorted(self._full.iter_errors(instance), key=lambda e: list(e.path))


def input_check(schema: Mapping[str, Any]) -> InputCheck:
    """The check for ``schema``, made the first time it is asked for."""
    return _check_of(json.dumps(schema, sort_keys=True))


@lru_cache(maxsize=1024)
def _check_of(schema: str) -> InputCheck:
    return InputCheck(json.loads(schema))


def _portable(schema: Any) -> bool:
    """Whether ``schema`` uses only keywords both drafts mean the same by. ``enum`` and ``const``
    count only with string values: the compiled check compares with ``==``, for which ``True == 1``."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, Mapping):
        return False
    for key, value in schema.items():
        if key in _SUBSCHEMA:
            ok = _portable(value)
        elif key in _SUBSCHEMA_LISTS:
            ok = isinstance(value, list) and _all_portable(value)
        elif key == "properties":
            ok = isinstance(value, Mapping) and _all_portable(value.values())
        elif key == "enum":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif key == "const":
            ok = isinstance(value, str)
        else:
            ok = key in _VALUES
        if not ok:
            return False
    return True


def _all_portable(schemas: Iterable[Any]) -> bool:
    return all(_portable(s) for s in schemas)
