"""Run one program to completion under limits: bounded output, a wall timeout, a process-count watch.

The program is a session leader (``start_new_session``), so its session id is its pid and every
process it forks stays in its group unless it calls ``setsid`` itself. When the wall timeout fires,
when the session holds more than ``max_processes`` processes (a fork bomb — ``RLIMIT_NPROC`` does not
bind root, this watch does), or when the program ends, the whole group gets SIGKILL.

Cancellation contract: cancelling ``run_limited`` SIGKILLs the group before re-raising.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tether.tools.output import BoundedBuffer, widen_pipe
from tether.tools.sandbox import kill_process_group, session_size


@dataclass
class ProcessResult:
    stdout: BoundedBuffer
    stderr: BoundedBuffer
    returncode: int | None
    timed_out: bool = False
    too_many_processes: bool = False


async def run_limited(
    argv: Sequence[str], *, stdin: bytes = b"", cwd: Path, env: Mapping[str, str],
    preexec: Callable[[], None] | None = None, timeout: float, max_output_bytes: int = 30_000,
    max_processes: int | None = None, poll_interval: float = 0.05,
) -> ProcessResult:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.subprocess_exec(
        lambda: _Collector(max_output_bytes), *argv, cwd=cwd, env=dict(env),
        start_new_session=True, preexec_fn=preexec,
    )
    pid = transport.get_pid()
    for fd in (1, 2):
        widen_pipe(transport, fd)
    pipe = transport.get_pipe_transport(0)
    pipe.write(stdin)
    pipe.close()
    watch = asyncio.create_task(_watch(pid, max_processes, poll_interval)) if max_processes else None
    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            await proto.exited
    except TimeoutError:
        timed_out = True
    except BaseException:
        transport.close()
        raise
    finally:
        kill_process_group(pid)  # stragglers, a timed-out program, or a cancelled call
        if watch:
            watch.cancel()
    await asyncio.wait(proto.closed, timeout=1.0)  # a daemonised grandchild may hold the pipes open
    transport.close()
    forked = bool(watch and watch.done() and not watch.cancelled() and not watch.exception() and watch.result())
    return ProcessResult(proto.out[1], proto.out[2], transport.get_returncode(), timed_out, forked)


async def _watch(pid: int, limit: int, interval: float) -> bool:
    """Kill the group once its session holds more than ``limit`` processes; True if it did."""
    while True:
        if await asyncio.to_thread(session_size, pid) > limit:
            kill_process_group(pid)
            return True
        await asyncio.sleep(interval)


class _Collector(asyncio.SubprocessProtocol):
    def __init__(self, limit: int) -> None:
        loop = asyncio.get_running_loop()
        self.out = {1: BoundedBuffer(limit), 2: BoundedBuffer(limit)}
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed = [loop.create_future(), loop.create_future()]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.out[fd].write(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd in (1, 2) and not self.closed[fd - 1].done():
            self.closed[fd - 1].set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)
