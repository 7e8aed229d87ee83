"""``tether fake-api`` in a process of its own: for tests that kill clients, and benchmarks that
measure a client's CPU time alone."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def fake_api_process(*args: str) -> Iterator[str]:
    """Start ``tether fake-api ARGS`` on a free loopback port; yields its base URL; stops it after."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tether.cli.main", "fake-api", "--port", str(port), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the fake API did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
