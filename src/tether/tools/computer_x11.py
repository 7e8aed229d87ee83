"""The desktop a ``ComputerTool`` drives: a protocol, and its X11 implementation.

``X11Desktop`` runs ``xdotool`` for input and ImageMagick's ``import`` for screenshots, each as an
asyncio subprocess with ``DISPLAY`` set, so the event loop never blocks. A command that fails, is
missing or outlives ``command_timeout`` becomes a ``ToolError``; a cancelled call kills its
process before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from tether.tools.base import ToolError

# A rectangle of the display in its own pixels: x, y, width, height.
Box = tuple[int, int, int, int]


class Desktop(Protocol):
    async def xdotool(self, *args: str) -> str:
        """Run one ``xdotool`` command line (commands may be chained); its standard output."""
        ...

    async def screenshot(self, size: tuple[int, int], crop: Box | None = None) -> bytes:
        """A PNG of the screen (or of ``crop``), resized to ``size``: exactly for the whole
        screen, to fit within it (keeping the aspect ratio) for a crop."""
        ...


@dataclass
class X11Desktop:
    """An X server, e.g. ``X11Desktop(":1")``. ``env`` defaults to this process's environment."""

    display: str
    command_timeout: float = 30.0
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    async def xdotool(self, *args: str) -> str:
        return (await self._run("xdotool", *args)).decode(errors="replace")

    async def screenshot(self, size: tuple[int, int], crop: Box | None = None) -> bytes:
        argv = ["import", "-silent", "-window", "root"]
        if crop is not None:
            x, y, width, height = crop
            argv += ["-crop", f"{width}x{height}+{x}+{y}", "+repage", "-resize", f"{size[0]}x{size[1]}"]
        else:
            argv += ["-resize", f"{size[0]}x{size[1]}!"]
        return await self._run(*argv, "png:-")

    async def _run(self, *argv: str) -> bytes:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, env={**self.env, "DISPLAY": self.display},
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError as exc:
            raise ToolError(f"{argv[0]} is not installed on this machine, so the computer tool cannot work") from exc
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), self.command_timeout)
        except TimeoutError as exc:
            raise ToolError(f"{argv[0]} did not finish within {self.command_timeout:g} seconds") from exc
        finally:
            await _reap(process)
        if process.returncode != 0:
            message = stderr.decode(errors="replace").strip() or "no error output"
            raise ToolError(f"{argv[0]} failed with exit status {process.returncode} on {self.display}: {message}")
        return stdout


async def _reap(process: asyncio.subprocess.Process) -> None:
    """Kill the process if it still runs (timeout or cancellation) and wait for it, shielded."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await asyncio.shield(process.wait())
