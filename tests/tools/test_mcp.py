"""MCP tools against a real server (tests/tools/servers/mcp_echo.py) over stdio and streamable HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="MCP tests need the mcp extra: pip install 'tether[mcp]'")

from tether.api.types import ImageBlock, ToolUseBlock
from tether.errors import ConfigError
from tether.tools.base import Tool, ToolContext, ToolError
from tether.tools.mcp import MCPConnectError, MCPServer, MCPTool, connect_mcp
from tether.tools.runner import ToolRunner

SERVER = Path(__file__).parent / "servers" / "mcp_echo.py"
CONTEXT = ToolContext(run_id="run", tool_use_id="toolu_1")


def stdio_server(name: str = "echo", **options) -> MCPServer:
    return MCPServer.stdio(name, sys.executable, str(SERVER), "stdio", **options)


class HTTPServer:
    """The echo server over streamable HTTP on a loopback port it picks itself."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, str(SERVER), "http"], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{self.process.stdout.readline().split()[1]}/mcp"

    def config(self, name: str = "echo", **options) -> MCPServer:
        return MCPServer.http(name, self.url, headers={"Authorization": "Bearer secret"}, **options)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def http_server() -> Iterator[HTTPServer]:
    server = HTTPServer()
    yield server
    server.stop()


@pytest.fixture(params=["stdio", "http"])
def server(request) -> MCPServer:
    if request.param == "stdio":
        return stdio_server()
    return request.getfixturevalue("http_server").config()


def by_name(tools: list[MCPTool]) -> dict[str, MCPTool]:
    return {t.remote_name: t for t in tools}


async def test_tools_are_listed_with_their_schemas(server: MCPServer):
    async with connect_mcp(server) as tools:
        assert [t.name for t in tools] == [
            "mcp__echo__echo", "mcp__echo__add", "mcp__echo__fail", "mcp__echo__pixel",
            "mcp__echo__sleep", "mcp__echo__pid", "mcp__echo__crash",
        ]
        echo = by_name(tools)["echo"]
        assert isinstance(echo, Tool)
        assert echo.input_schema["type"] == "object"
        assert echo.input_schema["required"] == ["text"]
        assert echo.input_schema["properties"]["times"]["type"] == "integer"
        spec = echo.spec().to_wire()
        assert spec["name"] == "mcp__echo__echo"
        assert spec["description"] == "Echo the text back, repeated `times` times."
        assert spec["input_schema"] == echo.input_schema
        assert "type" not in spec  # a custom tool


async def test_a_call_returns_the_text(server: MCPServer):
    async with connect_mcp(server) as tools:
        output = await by_name(tools)["echo"].call({"text": "ab", "times": 3}, CONTEXT)
        assert (output.content, output.is_error) == ("ababab", False)
        assert (await by_name(tools)["add"].call({"a": 2, "b": 40}, CONTEXT)).content == "42"


async def test_an_image_becomes_an_image_block(server: MCPServer):
    async with connect_mcp(server) as tools:
        output = await by_name(tools)["pixel"].call({}, CONTEXT)
    assert isinstance(output.content, list)
    [image] = output.content
    assert isinstance(image, ImageBlock)
    assert image.source["type"] == "base64" and image.source["media_type"] == "image/png"
    assert image.source["data"].startswith("iVBORw0KGgo")


async def test_a_failing_tool_is_an_error_result(server: MCPServer):
    async with connect_mcp(server) as tools:
        output = await by_name(tools)["fail"].call({"reason": "because"}, CONTEXT)
    assert output.is_error
    assert "failed on purpose: because" in output.content


async def test_a_slow_call_times_out_and_the_session_stays_usable(server: MCPServer):
    async with connect_mcp(dataclasses.replace(server, call_timeout=0.5)) as tools:
        started = time.monotonic()
        with pytest.raises(ToolError, match=r"did not answer sleep within 0.5 seconds"):
            await by_name(tools)["sleep"].call({"seconds": 30}, CONTEXT)
        assert time.monotonic() - started < 5
        assert (await by_name(tools)["echo"].call({"text": "still here"}, CONTEXT)).content == "still here"


async def test_a_cancelled_call_leaves_the_session_usable(server: MCPServer):
    async with connect_mcp(server) as tools:
        call = asyncio.create_task(by_name(tools)["sleep"].call({"seconds": 30}, CONTEXT))
        await asyncio.sleep(0.3)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert (await by_name(tools)["echo"].call({"text": "ok"}, CONTEXT)).content == "ok"


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_a_server_that_dies_mid_call_is_an_error_result_quickly(transport: str):
    http = HTTPServer() if transport == "http" else None
    try:
        config = http.config() if http else stdio_server()
        async with connect_mcp(config) as tools:
            runner = ToolRunner.of(tools, default_timeout=30)
            started = time.monotonic()
            [result] = await runner.run([ToolUseBlock("toolu_9", "mcp__echo__crash", {})], run_id="run")
            assert time.monotonic() - started < 5
            assert result.is_error
            assert "the MCP server 'echo' closed the connection during crash" in result.content
            with pytest.raises(ToolError):
                await by_name(tools)["echo"].call({"text": "anyone?"}, CONTEXT)
    finally:
        if http:
            http.stop()


async def test_leaving_the_block_stops_the_stdio_server_and_the_tools():
    async with connect_mcp(stdio_server()) as tools:
        pid = int((await by_name(tools)["pid"].call({}, CONTEXT)).content)
        os.kill(pid, 0)  # alive
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ToolError, match="the MCP server 'echo' is not connected"):
        await by_name(tools)["echo"].call({"text": "late"}, CONTEXT)


async def test_cancelling_the_block_stops_the_server_and_fails_the_running_call():
    entered, calls = asyncio.Event(), []

    async def agent() -> None:
        async with connect_mcp(stdio_server()) as tools:
            calls.append(int((await by_name(tools)["pid"].call({}, CONTEXT)).content))
            calls.append(asyncio.create_task(by_name(tools)["sleep"].call({"seconds": 30}, CONTEXT)))
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(agent())
    await asyncio.wait_for(entered.wait(), 10)
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pid, call = calls
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ToolError, match="the connection to the MCP server 'echo' was closed while sleep ran"):
        await asyncio.wait_for(call, 5)


async def test_several_servers_and_prefixes(http_server: HTTPServer):
    servers = [stdio_server("local"), http_server.config("remote", prefix="")]
    async with connect_mcp(*servers) as tools:
        names = {t.name for t in tools}
        assert {"mcp__local__echo", "echo"} <= names
        outputs = await asyncio.gather(*(t.call({"text": t.server.name}, CONTEXT) for t in tools
                                         if t.remote_name == "echo"))
        assert sorted(o.content for o in outputs) == ["local", "remote"]


async def test_two_tools_with_one_name_are_refused(http_server: HTTPServer):
    with pytest.raises(ConfigError, match="two MCP tools would both be named 'echo'"):
        async with connect_mcp(stdio_server("a", prefix=""), http_server.config("b", prefix="")):
            pass


async def test_a_server_that_cannot_start_is_a_connect_error():
    with pytest.raises(MCPConnectError, match=r"could not connect to the MCP server 'gone' \(/nonexistent/x\)"):
        async with connect_mcp(MCPServer.stdio("gone", "/nonexistent/x")):
            pass


async def test_a_server_that_never_answers_times_out():
    started = time.monotonic()
    with pytest.raises(MCPConnectError, match=r"did not start and list its tools within 0\.5 seconds") as caught:
        async with connect_mcp(MCPServer.stdio("mute", sys.executable, "-c", "import time; time.sleep(60)",
                                               connect_timeout=0.5)):
            pass
    assert caught.value.server == "mute"
    assert time.monotonic() - started < 8  # the mcp package gives a stdio server 2 s to leave on its own


async def test_an_http_server_that_is_not_there_is_a_connect_error():
    with pytest.raises(MCPConnectError, match="could not connect to the MCP server 'none'"):
        async with connect_mcp(MCPServer.http("none", "http://127.0.0.1:9/mcp", connect_timeout=5)):
            pass


def test_config_needs_one_way_to_reach_the_server_and_hides_secrets():
    with pytest.raises(ConfigError, match="needs exactly one of command"):
        MCPServer("both", command="x", url="http://x")
    with pytest.raises(ConfigError):
        MCPServer("neither")
    server = MCPServer.http("s", "http://h/mcp", headers={"Authorization": "Bearer secret"})
    assert "secret" not in repr(server)
    assert MCPServer.stdio("my.server", "x").tool_name("do it!") == "mcp__my_server__do_it_"


def test_importing_without_mcp_tells_how_to_install_it():
    code = "import sys; sys.modules['mcp'] = None; import tether.tools.mcp"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "pip install 'tether[mcp]'" in result.stderr
