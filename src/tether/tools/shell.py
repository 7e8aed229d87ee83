"""A persistent bash process that runs one command at a time and reports each one's output and status.

Each command is sent as one line, ``builtin eval $'<escaped command>' < /dev/null``, followed by
two ``printf`` lines that write a sentinel unique to this command — ``__tether_<token>__<status>`` —
to stdout and to stderr. Because the command arrives escaped, no quoting, heredoc or syntax error
in it can swallow the sentinel; because the sentinel is printed from two arguments, a ``set -x``
trace of the printf never contains it whole. Output streams into ``BoundedBuffer``s as it arrives.

Cancellation contract: ``kill()`` is synchronous and SIGKILLs the shell's whole process group (the
shell is a session leader; its commands share its group), so it is safe inside a cancellation
handler. After a kill, a timeout, or the shell exiting by itself, ``alive`` is False and the next
``run`` starts a fresh bash (working directory and variables back to the start).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tether.tools.output import BoundedBuffer, widen_pipe
from tether.tools.sandbox import kill_process_group


@dataclass
class CommandResult:
    stdout: BoundedBuffer
    stderr: BoundedBuffer
    # The command's exit status; None when it timed out or the shell itself ended first.
    status: int | None
    shell_status: int | None = None
    timed_out: bool = False


class Shell:
    def __init__(self, cwd: Path, env: Mapping[str, str], *, max_output_bytes: int = 30_000,
                 preexec: Callable[[], None] | None = None, executable: str = "/bin/bash") -> None:
        self.cwd, self.env, self.preexec, self.executable = cwd, dict(env), preexec, executable
        self.max_output_bytes = max_output_bytes
        self._transport: asyncio.SubprocessTransport | None = None
        self._protocol: _ShellProtocol | None = None
        self._lock = asyncio.Lock()

    @property
    def alive(self) -> bool:
        return self._transport is not None and self._transport.get_returncode() is None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, self._protocol = await loop.subprocess_exec(
            _ShellProtocol, self.executable, "--noprofile", "--norc",
            cwd=self.cwd, env=self.env, start_new_session=True, preexec_fn=self.preexec,
        )
        for fd in (1, 2):
            widen_pipe(self._transport, fd)

    async def run(self, command: str, timeout: float) -> CommandResult:
        """Run ``command``; after ``timeout`` seconds the shell is killed and the result says ``timed_out``."""
        async with self._lock:
            if not self.alive:
                await self.start()
            assert self._transport is not None and self._protocol is not None
            token = secrets.token_hex(12)
            capture = _Capture(f"__tether_{token}__".encode(), self.max_output_bytes)
            self._protocol.capture = capture
            self._transport.get_pipe_transport(0).write(_script(command, token))
            try:
                await asyncio.wait_for(asyncio.shield(capture.done), timeout)
            except TimeoutError:
                await self.aclose()
                capture.flush()
                return CommandResult(capture.streams[1].buffer, capture.streams[2].buffer, None, timed_out=True)
            except BaseException:
                self.kill()
                raise
            finally:
                self._protocol.capture = None
            return await self._result(capture)

    async def _result(self, capture: _Capture) -> CommandResult:
        out, err = capture.streams[1], capture.streams[2]
        result = CommandResult(out.buffer, err.buffer, out.status)
        if out.status is None:  # the shell exited before the sentinel: `exit`, `set -e`, `exec`...
            assert self._protocol is not None
            try:
                await asyncio.wait_for(asyncio.shield(self._protocol.exited), 5)
            except TimeoutError:
                self.kill()
            result.shell_status = self._transport.get_returncode() if self._transport else None
            self.close()
        return result

    def kill(self) -> None:
        if self._transport is not None:
            kill_process_group(self._transport.get_pid())
        self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._transport = None

    async def aclose(self) -> None:
        """Kill the process group, then wait (briefly) until the shell is reaped."""
        protocol = self._protocol
        self.kill()
        if protocol is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(protocol.exited), 2)


def _script(command: str, token: str) -> bytes:
    mark = f"builtin printf '%s%s__%s\\n' __tether_ {token} \"$__tether_status\""
    return (f"builtin eval {ansi_c_quote(command)} < /dev/null\n__tether_status=$?\n"
            f"{mark}\n{mark} >&2\n").encode()


def ansi_c_quote(text: str) -> str:
    """``text`` as a bash ``$'...'`` word: printable ASCII kept, every other byte as ``\\xHH``."""
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        char = chr(byte)
        if 0x20 <= byte < 0x7F and char not in "\\'":
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return "$'" + "".join(out) + "'"


@dataclass
class _Stream:
    """One output stream of one command: bytes before the sentinel go to ``buffer``."""

    marker: bytes
    buffer: BoundedBuffer
    carry: bytes = b""
    status: int | None = None
    closed: bool = False

    @property
    def finished(self) -> bool:
        return self.status is not None or self.closed

    def flush(self) -> None:
        """The command ended without a sentinel: what was held back in case it started one is output."""
        if self.status is None:
            self.buffer.write(self.carry)
        self.carry = b""

    def feed(self, data: bytes) -> None:
        if self.status is not None:
            return  # output of a background job after the command ended: not this command's
        data = self.carry + data
        at = data.find(self.marker)
        if at < 0:
            cut = max(0, len(data) - len(self.marker) + 1)
            self.buffer.write(data[:cut])
            self.carry = data[cut:]
            return
        self.buffer.write(data[:at])
        end = data.find(b"\n", at)
        if end < 0:
            self.carry = data[at:]
            return
        self.carry = b""
        self.status = int(data[at + len(self.marker):end] or 0)


@dataclass
class _Capture:
    marker: bytes
    limit: int
    done: asyncio.Future[None] = field(init=False)

    def __post_init__(self) -> None:
        self.done = asyncio.get_running_loop().create_future()
        self.streams = {fd: _Stream(self.marker, BoundedBuffer(self.limit)) for fd in (1, 2)}

    def feed(self, fd: int, data: bytes) -> None:
        self.streams[fd].feed(data)
        self._check()

    def eof(self, fd: int) -> None:
        stream = self.streams[fd]
        stream.closed = True
        stream.flush()
        self._check()

    def flush(self) -> None:
        for stream in self.streams.values():
            stream.flush()

    def _check(self) -> None:
        if not self.done.done() and all(s.finished for s in self.streams.values()):
            self.done.set_result(None)


class _ShellProtocol(asyncio.SubprocessProtocol):
    def __init__(self) -> None:
        self.capture: _Capture | None = None
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if self.capture is not None:
            self.capture.feed(fd, data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if self.capture is not None and fd in (1, 2):
            self.capture.eof(fd)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)
