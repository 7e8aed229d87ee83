"""Tool sets by name: ``bash``, ``editor``, ``python``, ``computer``, ``mcp:NAME``.

    tools = build_tools(["bash", "editor"], workspace, bash={"command_timeout": 30})

    async with open_tools("bash,python,mcp:files", workspace,
                          mcp={"files": MCPServer.stdio("files", "npx", "server-filesystem", "/srv")}) as tools:
        runner = ToolRunner.of(tools)

Options are grouped by tool: ``bash=``, ``editor=``, ``python=`` and ``computer=`` are keyword
arguments for that tool's class, ``mcp=`` maps a server name to its ``MCPServer``. ``computer`` and
``mcp:NAME`` import their modules only when named (MCP needs the ``mcp`` extra). MCP tools need a
live connection, so only ``open_tools`` (an async context manager) provides them; leaving it closes
the MCP sessions and every shell the tools started.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from tether.errors import ConfigError
from tether.tools.base import Tool
from tether.tools.bash import BashTool
from tether.tools.editor import TextEditor
from tether.tools.python_exec import PythonTool
from tether.tools.sandbox import Workspace, hide_own_environment

KNOWN = ("bash", "editor", "python", "computer", "mcp:NAME")


def tool_names(names: str | Iterable[str]) -> list[str]:
    """``"bash, editor"`` or ``["bash", "editor"]`` as a list without blanks or repeats."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for item in (n.strip() for n in items):
        if item and item not in out:
            out.append(item)
    return out


def build_tools(names: str | Iterable[str], workspace: Workspace, **options: Any) -> list[Tool]:
    """The local tools named (no ``mcp:``; see ``open_tools``), built with their ``options``."""
    unknown = set(options) - {"bash", "editor", "python", "computer", "mcp"}
    if unknown:
        raise ConfigError(f"unknown tool options {sorted(unknown)}; options are grouped by tool: "
                          "bash=, editor=, python=, computer=, mcp=")
    tools: list[Tool] = []
    for name in tool_names(names):
        if name.startswith("mcp:"):
            raise ConfigError(f"{name!r} is an MCP server, which needs a connection: "
                              "use `async with open_tools(...)`")
        tools.append(_build(name, workspace, dict(options.get(name) or {})))
    return tools


@asynccontextmanager
async def open_tools(
    names: str | Iterable[str], workspace: Workspace, **options: Any,
) -> AsyncIterator[list[Tool]]:
    """All the tools named, MCP servers connected; on exit, MCP sessions closed and shells killed."""
    wanted = tool_names(names)
    if wanted:
        hide_own_environment()
    servers = [_server(n[len("mcp:"):], options.get("mcp") or {}) for n in wanted if n.startswith("mcp:")]
    tools = build_tools([n for n in wanted if not n.startswith("mcp:")], workspace, **options)
    try:
        if servers:
            mcp = _import("tether.tools.mcp", "pip install 'tether[mcp]'")
            async with mcp.connect_mcp(*servers) as remote:
                yield [*tools, *remote]
        else:
            yield tools
    finally:
        await aclose_tools(tools)


async def aclose_tools(tools: Iterable[Tool]) -> None:
    """Release what the tools hold (shells, ...): each tool that has ``aclose()`` gets it called."""
    for t in tools:
        close = getattr(t, "aclose", None)
        if close is not None:
            await close()


def _build(name: str, workspace: Workspace, options: dict[str, Any]) -> Tool:
    if name == "bash":
        return BashTool(workspace, **options)
    if name == "editor":
        return TextEditor(workspace, **options)
    if name == "python":
        return PythonTool(workspace, **options)
    if name == "computer":
        computer = _import("tether.tools.computer", "see the computer-use section of the docs")
        try:
            return computer.ComputerTool(**options)
        except TypeError as exc:
            raise ConfigError(f"the computer tool needs display, width and height options: {exc}") from exc
    raise ConfigError(f"unknown tool {name!r}; known tools: {', '.join(KNOWN)}")


def _server(name: str, servers: Mapping[str, Any]) -> Any:
    if name not in servers:
        known = ", ".join(sorted(servers)) or "none"
        raise ConfigError(f"no MCP server named {name!r} is configured (configured: {known}); "
                          "pass it in the mcp option: mcp={name: MCPServer(...)}")
    return servers[name]


def _import(module: str, hint: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{module} cannot be imported ({exc}); {hint}") from exc
