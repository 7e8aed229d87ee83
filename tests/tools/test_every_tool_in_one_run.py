"""End to end: a scripted model on the fake API uses every built-in tool in one run — bash, the
editor, python, computer use on Xvfb, and an MCP server — plus a denied call and a bad input, each
answered, and the run completes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_computer_x11 import _missing, _start_xvfb  # the X server fixture of the computer tests

from tether import Agent, AnthropicClient, Settings
from tether.testing import FakeAPI, Turn, text, tool_use
from tether.tools.mcp import MCPServer
from tether.tools.policy import CommandPolicy
from tether.tools.registry import open_tools
from tether.tools.sandbox import Workspace

SERVER = Path(__file__).parent / "servers" / "mcp_echo.py"
pytestmark = pytest.mark.skipif(bool(_missing), reason=f"needs {', '.join(_missing)}")

EDITOR = "str_replace_based_edit_tool"
SCRIPT = [
    Turn([text("Let me look around."), tool_use("bash", {"command": "echo hello > notes.txt && cat notes.txt"})]),
    Turn([tool_use(EDITOR, {"command": "str_replace", "path": "notes.txt", "old_str": "hello",
                            "new_str": "hello, world"})]),
    Turn([tool_use(EDITOR, {"command": "view", "path": "notes.txt"})]),
    Turn([tool_use("python", {"code": "print(open('notes.txt').read().upper())"})]),
    Turn([tool_use("computer", {"action": "screenshot"})]),
    Turn([tool_use("mcp__echo__add", {"a": 2, "b": 40})]),
    Turn([tool_use("bash", {"command": "rm -rf /"}), tool_use(EDITOR, {"command": "view"})]),
    "Everything worked.",
]


async def test_a_scripted_model_uses_every_tool_in_one_run(tmp_path):
    xvfb, display = _start_xvfb()
    try:
        with FakeAPI() as fake:
            fake.script(SCRIPT, key="e2e")
            options = {"bash": {"policy": CommandPolicy(deny=[r"rm\s+-rf"])},
                       "computer": {"display": display, "width": 1024, "height": 768, "settle_delay": 0.1},
                       "mcp": {"echo": MCPServer.stdio("echo", sys.executable, str(SERVER), "stdio")}}
            names = ["bash", "editor", "python", "computer", "mcp:echo"]
            async with (open_tools(names, Workspace(tmp_path), **options) as tools,
                        AnthropicClient(api_key="e2e", base_url=fake.base_url, max_retries=0) as api):
                agent = Agent(api, tools=tools, settings=Settings(), workspace=tmp_path)
                events = [e async for e in agent.stream("use every tool")]
            sent_betas = fake.last_request("e2e").header("anthropic-beta")
    finally:
        xvfb.kill()
        xvfb.wait()
    results = [e for e in events if e.type == "tool_result"]
    by_name = {r.name: r for r in results[:6]}
    assert not any(r.is_error for r in results[:6]), [r.content for r in results if r.is_error]
    assert "hello" in by_name["bash"].content
    assert "HELLO, WORLD" in by_name["python"].content
    assert any(getattr(b, "type", None) == "image" for b in by_name["computer"].content)
    assert "42" in str(by_name["mcp__echo__add"].content)
    denied, invalid = results[6:]
    assert denied.is_error and "rm\\s+-rf" in denied.content
    assert invalid.is_error and "'path' is a required property" in invalid.content
    assert (tmp_path / "notes.txt").read_text() == "hello, world\n"
    assert "computer-use-2025-11-24" in (sent_betas or "")
    assert events[-1].outcome == "completed" and events[-1].text == "Everything worked."

