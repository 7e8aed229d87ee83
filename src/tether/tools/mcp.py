"""Tools of MCP servers as tether tools, over stdio or streamable HTTP.

    servers = [MCPServer.stdio("files", "npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv"),
               MCPServer.http("search", "https://mcp.example.com/mcp", headers={"Authorization": token})]
    async with connect_mcp(*servers) as tools:
        ...  # tools: list[MCPTool], named "mcp__files__read_file", ...

Needs the optional ``mcp`` package (``pip install 'tether[mcp]'``); importing this module without
it raises an ImportError that says so.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from tether.api.types import Json, ToolSpec
from tether.errors import ConfigError
from tether.tools.base import ToolContext, ToolError, ToolOutput
from tether.tools.mcp_connection import Connection, describe
from tether.tools.mcp_content import to_output
from tether.tools.mcp_session import CONNECTION_CLOSED, MCPError, call_tool

__all__ = ["MCPConnectError", "MCPServer", "MCPTool", "connect_mcp"]

MAX_NAME = 64
_NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9_-]")


class MCPConnectError(ConfigError):
    """An MCP server could not be started, reached, initialised or listed."""

    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(message)
        self.server = server


@dataclass(frozen=True)
class MCPServer:
    """How to reach one MCP server: ``command`` (+ ``args``, ``env``, ``cwd``) to start it and talk
    over stdio, or the ``url`` of its streamable HTTP endpoint (+ ``headers``).

    Its tools are named ``prefix + tool`` (default ``mcp__<name>__``; ``""`` for the bare names),
    with characters the API refuses replaced by ``_``. ``call_timeout`` bounds each call (None: no
    limit); ``connect_timeout`` the start, handshake and listing; ``close_timeout`` the shutdown.
    """

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = field(default=None, repr=False)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] | None = field(default=None, repr=False)
    prefix: str | None = None
    connect_timeout: float = 30.0
    call_timeout: float | None = 120.0
    close_timeout: float = 10.0

    def __post_init__(self) -> None:
        if (self.command is None) == (self.url is None):
            raise ConfigError(f"MCP server {self.name!r} needs exactly one of command (stdio) or url (HTTP)")
        object.__setattr__(self, "args", tuple(self.args))

    @classmethod
    def stdio(cls, name: str, command: str, *args: str, **options) -> MCPServer:
        return cls(name, command=command, args=args, **options)

    @classmethod
    def http(cls, name: str, url: str, **options) -> MCPServer:
        return cls(name, url=url, **options)

    @property
    def where(self) -> str:
        return self.url or " ".join([self.command or "", *self.args])

    def tool_name(self, tool: str) -> str:
        prefix = f"mcp__{self.name}__" if self.prefix is None else self.prefix
        return _NOT_IN_NAME.sub("_", prefix + tool)[:MAX_NAME]


class MCPTool:
    """One tool of a connected MCP server. ``remote_name`` is its name on the server.

    ``idempotent`` follows the server's own ``readOnlyHint``/``idempotentHint`` annotations.
    """

    exclusive = False

    def __init__(self, server: MCPServer, connection: Connection, listing: Json) -> None:
        self.server, self._connection = server, connection
        self.remote_name: str = listing["name"]
        self.name = server.tool_name(self.remote_name)
        self.description: str = listing.get("description") or listing.get("title") or \
            f"The tool {self.remote_name} of the MCP server {server.name}."
        self.input_schema: Json = {"type": "object", "properties": {}, **(listing.get("inputSchema") or {})}
        self.annotations: Json = listing.get("annotations") or {}
        self.idempotent = bool(self.annotations.get("readOnlyHint") or self.annotations.get("idempotentHint"))
        self.timeout = server.call_timeout

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, input_schema=self.input_schema)

    async def call(self, input: Json, context: ToolContext) -> ToolOutput:
        session = self._connection.session
        if session is None:
            raise ToolError(f"the MCP server {self.server.name!r} is not connected, so {self.name} cannot run")
        try:
            async with asyncio.timeout(self.timeout):
                return to_output(await call_tool(session, self.remote_name, input))
        except TimeoutError as exc:
            raise ToolError(f"the MCP server {self.server.name!r} did not answer {self.remote_name} "
                            f"within {self.timeout:g} seconds") from exc
        except MCPError as exc:
            raise ToolError(self._failure(exc)) from exc
        except Exception as exc:
            raise ToolError(f"calling {self.remote_name} on the MCP server {self.server.name!r} failed: "
                            f"{describe(exc)}") from exc

    def _failure(self, exc: Exception) -> str:
        error = getattr(exc, "error", None)
        code, message = getattr(error, "code", None), getattr(error, "message", str(exc))
        if code == CONNECTION_CLOSED and self._connection.closing:
            return f"the connection to the MCP server {self.server.name!r} was closed while {self.remote_name} ran"
        if code == CONNECTION_CLOSED:
            return (f"the MCP server {self.server.name!r} closed the connection during {self.remote_name} "
                    f"(the server may have exited): {message}")
        return f"the MCP server {self.server.name!r} answered {self.remote_name} with error {code}: {message}"


@asynccontextmanager
async def connect_mcp(*servers: MCPServer) -> AsyncIterator[list[MCPTool]]:
    """Connect to each server, list its tools, and yield them all as tether tools.

    Each session lives in an owner task of its own, so the block may be entered and left by any
    task, and the tools called from any task of the same event loop.

    Cancellation contract: leaving the block, by any exit including cancellation, closes every
    session: a stdio server gets its stdin closed, then SIGTERM, then SIGKILL (the ``mcp``
    package's escalation, shielded from cancellation); an HTTP session is ended with a DELETE.
    Each server gets ``close_timeout`` seconds, then its owner task is cancelled; cancelling the
    exit itself cancels the owners at once. A call still running when the block closes fails with
    a ``ToolError``, and so does any later call. Cancelling a call cancels only that call; its
    session stays open.

    Raises ``MCPConnectError`` when a server cannot be started, reached, initialised or listed
    within its ``connect_timeout`` (the servers opened before it are closed first), and
    ``ConfigError`` when two tools would get the same name.
    """
    async with AsyncExitStack() as stack:
        tools: list[MCPTool] = []
        for server in servers:
            connection = Connection(server, connect_timeout=server.connect_timeout,
                                    close_timeout=server.close_timeout)
            listing = await _open(server, connection)
            stack.push_async_callback(connection.close)
            tools += [MCPTool(server, connection, entry) for entry in listing]
        _check_unique(tools)
        yield tools


async def _open(server: MCPServer, connection: Connection) -> list[Json]:
    try:
        return await connection.open()
    except TimeoutError as exc:
        raise MCPConnectError(f"the MCP server {server.name!r} ({server.where}) did not start and list its "
                              f"tools within {server.connect_timeout:g} seconds", server=server.name) from exc
    except Exception as exc:
        raise MCPConnectError(f"could not connect to the MCP server {server.name!r} ({server.where}): "
                              f"{describe(exc)}", server=server.name) from exc


def _check_unique(tools: Iterable[MCPTool]) -> None:
    seen: dict[str, MCPTool] = {}
    for tool in tools:
        if tool.name in seen:
            other = seen[tool.name]
            raise ConfigError(f"two MCP tools would both be named {tool.name!r}: {other.remote_name} of "
                              f"{other.server.name!r} and {tool.remote_name} of {tool.server.name!r}; "
                              "give the servers different names or prefixes")
        seen[tool.name] = tool
