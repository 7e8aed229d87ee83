"""What the distributed-fleet tests share: a fresh PostgreSQL database per module, worker processes,
the fake API in a process of its own.

PostgreSQL is found at ``TETHER_TEST_PG`` (an admin URL; default the local server as ``postgres``);
when it cannot be reached the tests are skipped, saying so. Each module gets a database
``tether_dist_<random>`` of its own, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ADMIN_URL = os.environ.get("TETHER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
HERE = Path(__file__).parent


def _admin():
    psycopg = pytest.importorskip("psycopg", reason="the distributed fleet tests need psycopg (the dbos extra)")
    pytest.importorskip("dbos", reason="the distributed fleet tests need dbos: pip install 'tether[distributed]'")
    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {ADMIN_URL} (set TETHER_TEST_PG): {exc}".strip())


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database; its URL. Dropped (with whatever still holds a connection) afterwards."""
    name = f"tether_dist_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def query(url: str, sql: str, *params) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, f"{what} did not start"
            time.sleep(0.05)


@contextlib.contextmanager
def fake_api_process(*options: str) -> Iterator[str]:
    """``tether fake-api`` in a process of its own; its base URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tether.cli.main", "fake-api", "--port", str(port), *options],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process, "tether fake-api")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


class Workers:
    """Worker processes, by executor id; each one's output goes to ``<logs>/<id>.log``."""

    def __init__(self, url: str, logs: Path) -> None:
        self.url, self.logs = url, logs
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, executor_id: str, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        """A worker process, with no credentials or settings from the environment but ``env``'s."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TETHER_"))}
        home = self.logs / f"{executor_id}.home"
        home.mkdir(exist_ok=True)
        log = open(self.logs / f"{executor_id}.log", "w")
        self.processes[executor_id] = subprocess.Popen(
            [sys.executable, *argv], stdout=log, stderr=subprocess.STDOUT, cwd=home,
            env={**clean, "HOME": str(home), "XDG_DATA_HOME": str(home), **(env or {})})
        log.close()

    def cli(self, executor_id: str, *options: str, env: dict[str, str] | None = None) -> None:
        """``tether worker`` under ``executor_id``."""
        self.start(executor_id, ["-m", "tether.cli.main", "worker", "--db", self.url, "--executor-id", executor_id,
                                 *options], env)

    def wait_ready(self, *executor_ids: str, timeout: float = 30) -> None:
        """Until the workers (all of them by default) have beaten once after launching DBOS and
        registering the queue."""
        deadline = time.monotonic() + timeout
        want = set(executor_ids or self.processes)
        while True:
            for executor_id in want:
                assert self.processes[executor_id].poll() is None, \
                    f"worker {executor_id} exited:\n{self.log(executor_id)}"
            with contextlib.suppress(Exception):
                rows = query(self.url, "SELECT executor_id FROM tether_fleet_workers "
                                       "WHERE state = 'running' AND beat_at > started_at")
                if want <= {r[0] for r in rows}:
                    return
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.05)

    def log(self, executor_id: str) -> str:
        return (self.logs / f"{executor_id}.log").read_text()

    def kill(self, executor_id: str) -> None:
        process = self.processes[executor_id]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop_all(self, timeout: float = 20) -> dict[str, int]:
        """SIGTERM every worker still running; their exit codes."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        codes = {}
        for executor_id, process in self.processes.items():
            try:
                codes[executor_id] = process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[executor_id] = process.wait(10)
        return codes
