"""Hostile or broken tool calls, each through ``ToolRunner``: every one ends as an ``is_error`` result.

Nothing here may raise, hang, or leave processes behind; limits are kept small so the suite is fast.
"""

from __future__ import annotations

import resource
import time

import pytest

from tether.api.types import ToolResultBlock, ToolUseBlock
from tether.tools.bash import BashTool
from tether.tools.editor import TextEditor
from tether.tools.python_exec import PythonTool
from tether.tools.runner import ToolRunner
from tether.tools.sandbox import Limits, Workspace


@pytest.fixture
async def runner(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    ws = Workspace(root)
    bash = BashTool(ws, command_timeout=1, max_output_bytes=20_000)
    limits = Limits(cpu_seconds=5, memory_mb=256, file_size_mb=8, max_processes=16, open_files=64)
    tools = [bash, TextEditor(ws), PythonTool(ws, limits=limits, default_timeout=5)]
    yield ToolRunner.of(tools)
    await bash.aclose()


async def call(runner: ToolRunner, name: str, **input) -> ToolResultBlock:
    [result] = await runner.run([ToolUseBlock("toolu_bad", name, input)], "run-bad")
    return result


def text(result: ToolResultBlock) -> str:
    return result.content if isinstance(result.content, str) else str(result.content)


async def test_path_traversal(runner, tmp_path):
    result = await call(runner, "str_replace_based_edit_tool", command="create", path="../escaped.txt", file_text="x")
    assert result.is_error and "outside the workspace" in text(result) and str(tmp_path / "ws") in text(result)
    assert not (tmp_path / "escaped.txt").exists()
    absolute = await call(runner, "str_replace_based_edit_tool", command="view", path="/etc/passwd")
    assert absolute.is_error and "outside the workspace" in text(absolute)


async def test_symlink_escape(runner, tmp_path):
    (tmp_path / "secret.txt").write_text("top secret")
    (tmp_path / "ws" / "innocent.txt").symlink_to(tmp_path / "secret.txt")
    (tmp_path / "ws" / "dir").symlink_to(tmp_path)
    for path in ("innocent.txt", "dir/secret.txt"):
        result = await call(runner, "str_replace_based_edit_tool", command="view", path=path)
        assert result.is_error and "symbolic link" in text(result) and "top secret" not in text(result)
    write = await call(runner, "str_replace_based_edit_tool", command="str_replace", path="innocent.txt",
                       old_str="top", new_str="no")
    assert write.is_error and (tmp_path / "secret.txt").read_text() == "top secret"


async def test_command_that_never_ends(runner):
    started = time.monotonic()
    result = await call(runner, "bash", command="while :; do :; done")
    assert time.monotonic() - started < 3
    assert result.is_error and "did not finish within 1 seconds" in text(result)
    assert (await call(runner, "bash", command="echo still works")).content == "still works"


async def test_fork_bomb(runner):
    started = time.monotonic()
    result = await call(runner, "python", code="import os\nwhile True:\n    os.fork()")
    assert time.monotonic() - started < 6
    assert result.is_error
    # Root ignores RLIMIT_NPROC, so the process-count watch stops it; anyone else hits the rlimit first.
    assert "more than 16 processes" in text(result) or "hit the limit of 16 processes" in text(result)


async def test_memory_hog(runner):
    result = await call(runner, "python", code="hog = []\nwhile True:\n    hog.append(bytearray(10 * 2**20))")
    assert result.is_error and "ran out of memory (the limit is 256 MB)" in text(result)


async def test_gigabyte_of_output(tmp_path):
    bash = BashTool(Workspace(tmp_path), command_timeout=30, max_output_bytes=20_000)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    try:
        result = await call(ToolRunner.of([bash]), "bash", command="yes | head -c 1000000000")
    finally:
        await bash.aclose()
    assert time.monotonic() - started < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 50_000  # KiB: memory stayed bounded
    assert not result.is_error and "1000000000 bytes in all" in text(result) and len(text(result)) < 25_000


async def test_binary_output(runner):
    result = await call(runner, "bash", command="head -c 3000 /bin/sh")
    assert not result.is_error and "not valid UTF-8" in text(result)


async def test_invalid_utf8(runner):
    result = await call(runner, "python", code="import sys\nsys.stdout.buffer.write(b'caf\\xe9 \\xc3\\x28')")
    assert not result.is_error and text(result).startswith("caf\ufffd \ufffd(") and "not valid UTF-8" in text(result)


async def test_old_str_matching_twice(runner, tmp_path):
    (tmp_path / "ws" / "f.py").write_text("x = 1\nprint(x)\nx = 1\n")
    result = await call(runner, "str_replace_based_edit_tool", command="str_replace", path="f.py",
                        old_str="x = 1", new_str="x = 2")
    assert result.is_error and "occurs 2 times in f.py, at lines 1, 3" in text(result)


@pytest.mark.parametrize("name, input, missing", [
    ("str_replace_based_edit_tool", {"command": "create", "path": "f.txt"}, "file_text"),
    ("str_replace_based_edit_tool", {"command": "view"}, "path"),
    ("str_replace_based_edit_tool", {"command": "insert", "path": "f.txt", "new_str": "x"}, "insert_line"),
    ("python", {}, "code"),
])
async def test_missing_required_field(runner, name, input, missing):
    result = await call(runner, name, **input)
    assert result.is_error and f"'{missing}' is a required property" in text(result)


async def test_wrong_types(runner):
    result = await call(runner, "bash", command=["ls"])
    assert result.is_error and "is not of type 'string'" in text(result)
    empty = await call(runner, "bash")
    assert empty.is_error and "give a command" in text(empty)
