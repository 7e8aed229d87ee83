"""The only module that touches the ``mcp`` package: open a client session over stdio or streamable
HTTP, list tools, call one. Results leave this module as plain wire dicts (the MCP JSON field
names), so the rest of tether never depends on the package's model classes.

Written against mcp 2.x; the few names that differ in mcp 1.x are looked up both ways, and the
tests pass on mcp 1.30 except two: there, a call whose HTTP server dies, or that is still running
when its session closes, is not failed by the package and ends only at ``call_timeout``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

try:
    import mcp
    from mcp import ClientSession, StdioServerParameters, stdio_client
    from mcp.shared import exceptions as _exceptions
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "tether's MCP support needs the 'mcp' package: pip install 'tether[mcp]'"
    ) from exc

from tether.api.types import Json

# What a session raises for a JSON-RPC error, a read timeout or a closed connection (McpError in 1.x).
MCPError: type[Exception] = getattr(_exceptions, "MCPError", None) or _exceptions.McpError  # type: ignore[attr-defined]

CONNECTION_CLOSED = -32000


class Endpoint(Protocol):
    """Where a server is: a command to start (``command``, ``args``, ``env``, ``cwd``) or a ``url``."""

    name: str
    command: str | None
    args: tuple[str, ...]
    env: Mapping[str, str] | None
    cwd: str | None
    url: str | None
    headers: Mapping[str, str] | None


@asynccontextmanager
async def open_session(endpoint: Endpoint) -> AsyncIterator[ClientSession]:
    """An initialised session; leaving the block closes it and stops a stdio server's process."""
    async with AsyncExitStack() as stack:
        if endpoint.url is not None:
            streams = await stack.enter_async_context(_http(endpoint.url, dict(endpoint.headers or {})))
        else:
            streams = await stack.enter_async_context(stdio_client(_stdio(endpoint)))
        session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
        await session.initialize()
        yield session


def _stdio(endpoint: Endpoint) -> StdioServerParameters:
    assert endpoint.command is not None
    return StdioServerParameters(
        command=endpoint.command, args=list(endpoint.args), env=dict(endpoint.env) if endpoint.env else None,
        cwd=endpoint.cwd,
    )


@asynccontextmanager
async def _http(url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    """The streamable HTTP transport's (read, write, ...) streams."""
    from mcp.client import streamable_http
    from mcp.shared._httpx_utils import create_mcp_http_client

    if hasattr(streamable_http, "streamable_http_client"):
        async with create_mcp_http_client(headers=headers) as http, \
                streamable_http.streamable_http_client(url, http_client=http) as streams:
            yield streams
    else:  # mcp 1.x before streamable_http_client
        async with streamable_http.streamablehttp_client(url, headers=headers) as streams:
            yield streams


async def list_tools(session: ClientSession) -> list[Json]:
    """Every tool of the server, following the pagination cursor."""
    tools: list[Json] = []
    cursor: str | None = None
    while True:
        if cursor is None:
            result = await session.list_tools()
        else:
            result = await session.list_tools(params=mcp.types.PaginatedRequestParams(cursor=cursor))
        page = wire(result)
        tools += page.get("tools", [])
        cursor = page.get("nextCursor")
        if not cursor:
            return tools


async def call_tool(session: ClientSession, name: str, arguments: Json) -> Json:
    """A ``CallToolResult`` as wire JSON (``content``, ``isError``, ``structuredContent``)."""
    return wire(await session.call_tool(name, arguments))


def wire(model: Any) -> Json:
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)
