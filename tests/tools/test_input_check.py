"""The tool-input check: the compiled fast path never answers differently from jsonschema's."""

from __future__ import annotations

import itertools

import jsonschema
import pytest

from tether.tools.bash import BashTool
from tether.tools.editor import TextEditor, input_schema
from tether.tools.python_exec import PythonTool
from tether.tools.runner import ToolRunner
from tether.tools.sandbox import Workspace
from tether.tools.schema import InputCheck, input_check

EDITOR = input_schema(["view", "create", "str_replace", "insert", "undo_edit"])
VALUES = [None, True, 0, 1, 1.0, 2.5, -3, "", "view", "create", "str_replace", "insert", "a.py", [], [1, 2], [1],
          [1, "2"], [True, 2], {}, {"x": 1}]


def inputs():
    """Every editor input over a few keys and VALUES: right ones, wrong types, missing fields."""
    keys = ["command", "path", "file_text", "old_str", "insert_line", "view_range"]
    for chosen in itertools.combinations(keys, 3):
        for values in itertools.product(VALUES, repeat=2):
            yield dict(zip(chosen, ["create", *values], strict=True))
            yield dict(zip(chosen, [*values, "a.py"], strict=True))
    yield from (VALUES[:6])  # not even objects


def test_the_editors_schema_is_compiled_and_agrees_with_jsonschema_on_every_input():
    check = InputCheck(EDITOR)
    assert check._fast is not None
    full = jsonschema.Draft202012Validator(EDITOR)
    tried = 0
    for instance in inputs():
        expected = sorted(e.message for e in full.iter_errors(instance))
        assert sorted(e.message for e in check.errors(instance)) == expected, instance
        tried += 1
    assert tried > 5000


def test_the_builtin_tools_schemas_are_compiled(tmp_path):
    workspace = Workspace(tmp_path)
    for tool in (BashTool(workspace), TextEditor(workspace), PythonTool(workspace)):
        assert InputCheck(tool.input_schema)._fast is not None, tool.name


@pytest.mark.parametrize("schema", [
    {"$defs": {"n": {"type": "integer"}}, "properties": {"n": {"$ref": "#/$defs/n"}}},
    {"type": "array", "prefixItems": [{"type": "string"}]},
    {"type": "array", "items": [{"type": "string"}]},
    {"enum": [1, 2]},  # True == 1 for the compiled check, not for jsonschema
    {"const": 0},
    {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"},
])
def test_a_schema_the_drafts_read_differently_is_checked_by_jsonschema_alone(schema):
    check = InputCheck(schema)
    assert check._fast is None
    assert [e.message for e in check.errors(True)] == [e.message for e in jsonschema.Draft202012Validator(schema)
                                                       .iter_errors(True)]


def test_an_input_the_compiled_check_refuses_but_jsonschema_accepts_is_valid():
    check = InputCheck({"type": "string", "format": "email"})  # fastjsonschema asserts formats; 2020-12 does not
    assert check._fast is not None
    assert check.errors("not an address") == []


@pytest.mark.parametrize("schema", [{"type": "strin"}, {"type": "string", "pattern": "("}, {"minLength": "x"}])
def test_a_schema_that_does_not_compile_is_left_to_jsonschema(schema):
    assert InputCheck(schema)._fast is None


def test_every_runner_of_a_tool_shares_one_check(tmp_path):
    first, second = (ToolRunner.of([TextEditor(Workspace(tmp_path))]) for _ in range(2))
    assert first._checks == second._checks and input_check(dict(EDITOR)) is input_check(EDITOR)
