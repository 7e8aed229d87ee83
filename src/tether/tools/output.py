"""Bounded capture of a process's output, and turning it into text for the model.

A command may print a gigabyte; ``BoundedBuffer`` keeps the first and last ``limit // 2`` bytes and
counts what it dropped in between, so memory stays bounded however long the stream is.
"""

from __future__ import annotations

import codecs
import fcntl
import signal
from dataclasses import dataclass, field


@dataclass
class BoundedBuffer:
    limit: int
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    dropped: int = 0

    def write(self, data: bytes) -> None:
        room = self.limit // 2 - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        keep = self.limit - self.limit // 2
        if len(data) >= keep:
            self.dropped += len(self.tail) + len(data) - keep
            self.tail = bytearray(data[-keep:])
            return
        self.tail += data
        excess = len(self.tail) - keep
        if excess > 0:
            self.dropped += excess
            del self.tail[:excess]

    @property
    def total(self) -> int:
        return len(self.head) + self.dropped + len(self.tail)

    def text(self) -> tuple[str, bool]:
        """The captured text, with a note where bytes were dropped; and whether any byte was not UTF-8."""
        if not self.dropped:
            return _decode(bytes(self.head + self.tail), final=True)
        head, bad_head = _decode(bytes(self.head), final=False)
        tail, bad_tail = _decode(_skip_continuation(bytes(self.tail)), final=True)
        note = f"\n[... {self.dropped} bytes of output dropped: {self.total} bytes in all ...]\n"
        return head + note + tail, bad_head or bad_tail


def _decode(data: bytes, *, final: bool) -> tuple[str, bool]:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    text = decoder.decode(data, final=final)
    bad = "\ufffd" in text or "\x00" in text
    return text.replace("\x00", "\ufffd"), bad


def _skip_continuation(data: bytes) -> bytes:
    """Drop the UTF-8 continuation bytes a cut left at the start of ``data``."""
    i = 0
    while i < min(3, len(data)) and 0x80 <= data[i] < 0xC0:
        i += 1
    return data[i:]


NOT_UTF8 = "[the output was not valid UTF-8 text (binary?); undecodable bytes are shown as \ufffd]"


def render(stdout: BoundedBuffer, stderr: BoundedBuffer, *, status: str | None = None) -> str:
    """stdout, then stderr under a ``[stderr]`` line, then the status line and any note."""
    out, bad_out = stdout.text()
    err, bad_err = stderr.text()
    parts = [out.rstrip("\n")] if out else []
    if err:
        parts.append("[stderr]\n" + err.rstrip("\n"))
    if status:
        parts.append(f"[{status}]")
    if bad_out or bad_err:
        parts.append(NOT_UTF8)
    return "\n".join(parts) if parts else "(no output)"


def exit_status(returncode: int | None) -> str:
    """``exit code 1``, or ``killed by signal SIGKILL`` for a negative return code."""
    if returncode is None:
        return "still running"
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = str(-returncode)
    return f"killed by signal {name}"


def widen_pipe(transport, fd: int, size: int = 1 << 20) -> None:
    """Give a child's output pipe a bigger kernel buffer (fewer wake-ups on heavy output). Best effort:
    uvloop's pipe transports do not show their file."""
    pipe = transport.get_pipe_transport(fd)
    file = pipe.get_extra_info("pipe") if pipe is not None else None
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if file is None or setsize is None:
        return
    try:
        fcntl.fcntl(file.fileno(), setsize, size)
    except OSError:
        pass
