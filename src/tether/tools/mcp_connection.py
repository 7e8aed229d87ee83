"""One MCP session, owned by a task of its own.

The ``mcp`` package builds its sessions on anyio task groups, which must be entered and left by the
same task. ``Connection`` gives the session a dedicated owner task, so that the code which opens
and closes a connection, and the tasks that call its tools, may all be different tasks of the loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tether.api.types import Json
from tether.tools.mcp_session import ClientSession, Endpoint, list_tools, open_session


class Connection:
    """``open()`` starts the owner and returns the server's tools; ``close()`` stops it.

    While open, ``session`` is the live session; after ``close()`` (or once the owner has ended)
    it is None. A server that dies does not end the owner: its calls fail with "Connection closed"
    until ``close()``.
    """

    def __init__(self, endpoint: Endpoint, *, connect_timeout: float, close_timeout: float) -> None:
        self.endpoint = endpoint
        self.connect_timeout, self.close_timeout = connect_timeout, close_timeout
        self.session: ClientSession | None = None
        self._ready: asyncio.Future[list[Json]] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._owner: asyncio.Task[None] | None = None

    @property
    def closing(self) -> bool:
        """``close()`` has been called."""
        return self._stop.is_set()

    async def open(self) -> list[Json]:
        """The server's tools once it is initialised. Raises what failed, or ``TimeoutError``."""
        self._owner = asyncio.create_task(self._own(), name=f"mcp-server:{self.endpoint.name}")
        try:
            return await asyncio.wait_for(asyncio.shield(self._ready), self.connect_timeout)
        except BaseException:
            await self.close()
            if self._ready.done() and not self._ready.cancelled():
                self._ready.exception()  # retrieved: the error is the one being raised, or moot
            raise

    async def close(self) -> None:
        """Stop the owner and wait for the session and transport to close (``close_timeout`` at
        most, then the owner is cancelled). Cancelling ``close()`` cancels the owner too."""
        self._stop.set()
        owner = self._owner
        if owner is None or owner.done():
            return
        if not self._ready.done():  # still connecting: nothing to close gracefully
            owner.cancel()
        try:
            done, _ = await asyncio.wait({owner}, timeout=self.close_timeout)
            if not done:
                owner.cancel()
                await asyncio.wait({owner}, timeout=self.close_timeout)
        except asyncio.CancelledError:  # ours, not the owner's: asyncio.wait does not raise the owner's
            owner.cancel()
            raise

    async def _own(self) -> None:
        try:
            async with open_session(self.endpoint) as session:
                tools = await list_tools(session)
                self.session = session
                self._ready.set_result(tools)
                await self._stop.wait()
        except BaseException as exc:  # reported through open(); a failure after it ends the session only
            if not self._ready.done():
                if isinstance(exc, asyncio.CancelledError):
                    self._ready.cancel()
                else:
                    self._ready.set_exception(_leaf(exc))
            if not isinstance(exc, Exception):
                raise
        finally:
            self.session = None


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside anyio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def describe(exc: BaseException) -> str:
    leaf: Any = _leaf(exc)
    text = str(leaf).strip()
    return f"{type(leaf).__name__}: {text}" if text else type(leaf).__name__
