"""A small MCP server for tether's tests: ``python mcp_echo.py stdio`` or ``python mcp_echo.py http``.

Over HTTP it binds 127.0.0.1 on a free port and prints ``PORT <n>`` on stdout before serving
``/mcp``, so the test never races for a port. Works with mcp 2.x (``MCPServer``) and 1.x (``FastMCP``).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import sys

try:
    from mcp.server.mcpserver import Image
    from mcp.server.mcpserver import MCPServer as Server
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server
    from mcp.server.fastmcp import Image
    from mcp.server.fastmcp.exceptions import ToolError

# A 1x1 red PNG.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)

server = Server("echo", log_level="CRITICAL")


@server.tool(description="Echo the text back, repeated `times` times.")
def echo(text: str, times: int = 1) -> str:
    return text * times


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> str:
    return str(a + b)


@server.tool(description="Always fails.")
def fail(reason: str) -> str:
    raise ToolError(f"failed on purpose: {reason}")


@server.tool(description="Return a one-pixel PNG.")
def pixel() -> Image:
    return Image(data=PIXEL, format="png")


@server.tool(description="Sleep for a while, then answer.")
async def sleep(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


@server.tool(description="The server's process id.")
def pid() -> str:
    return str(os.getpid())


@server.tool(description="Kill the server process in the middle of the call.")
async def crash() -> str:
    await asyncio.sleep(0.1)
    os._exit(1)


def serve_http() -> None:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(server.streamable_http_app(), log_level="warning")
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    if sys.argv[1:] == ["http"]:
        serve_http()
    else:
        server.run("stdio")
