"""Tool sets by name: local tools, computer and MCP by lazy import, clear errors, cleanup on exit."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tether.api.types import ToolUseBlock
from tether.errors import ConfigError
from tether.tools.base import Tool, ToolContext
from tether.tools.bash import BashTool
from tether.tools.editor import TextEditor
from tether.tools.python_exec import PythonTool
from tether.tools.registry import build_tools, open_tools, tool_names
from tether.tools.runner import ToolRunner
from tether.tools.sandbox import Workspace

ECHO_SERVER = Path(__file__).parent / "servers" / "mcp_echo.py"


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path)


def test_names():
    assert tool_names("bash, editor,,bash ") == ["bash", "editor"]
    assert tool_names(["python"]) == ["python"]


def test_local_tools_by_name_with_options(ws):
    tools = build_tools("bash,editor,python", ws, bash={"command_timeout": 5},
                        editor={"version": "text_editor_20250124"})
    bash, editor, python = tools
    assert isinstance(bash, BashTool) and bash.command_timeout == 5
    assert isinstance(editor, TextEditor) and editor.name == "str_replace_editor"
    assert isinstance(python, PythonTool)
    assert all(isinstance(t, Tool) for t in tools)
    assert [t.spec().name for t in tools] == ["bash", "str_replace_editor", "python"]


def test_unknown_names_and_options_are_explained(ws):
    with pytest.raises(ConfigError, match=r"unknown tool 'shell'; known tools: bash, editor, python, computer, mcp:NAME"):
        build_tools(["bash", "shell"], ws)
    with pytest.raises(ConfigError, match="grouped by tool"):
        build_tools(["bash"], ws, timeout=3)
    with pytest.raises(ConfigError, match="open_tools"):
        build_tools(["mcp:files"], ws)


def test_computer_is_imported_when_named(ws):
    [computer] = build_tools(["computer"], ws, computer={"display": ":7", "width": 1280, "height": 800})
    assert computer.name == "computer" and computer.spec().type.startswith("computer_")
    with pytest.raises(ConfigError, match="display, width and height"):
        build_tools(["computer"], ws)


async def test_open_tools_closes_the_shells(ws):
    async with open_tools(["bash"], ws) as tools:
        pid = int((await tools[0].call({"command": "echo $$"}, ToolContext("run", "t"))).content)
        assert os.path.exists(f"/proc/{pid}")
    await asyncio.sleep(0.1)
    assert not os.path.exists(f"/proc/{pid}")


async def test_open_tools_connects_mcp_servers(ws):
    mcp = pytest.importorskip("tether.tools.mcp")
    server = mcp.MCPServer.stdio("echo", sys.executable, str(ECHO_SERVER), "stdio")
    async with open_tools("editor,mcp:echo", ws, mcp={"echo": server}) as tools:
        names = [t.name for t in tools]
        assert names[0] == "str_replace_based_edit_tool" and "mcp__echo__add" in names
        [result] = await ToolRunner.of(tools).run([ToolUseBlock("t", "mcp__echo__add", {"a": 2, "b": 3})], "run")
        assert result.content in ("5", [{"type": "text", "text": "5"}]) or "5" in str(result.content)


async def test_unconfigured_mcp_server(ws):
    with pytest.raises(ConfigError, match="no MCP server named 'files'"):
        async with open_tools(["mcp:files"], ws):
            pass
