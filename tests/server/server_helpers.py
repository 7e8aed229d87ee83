"""Helpers of the service tests: the service in process (its lifespan entered in the test's loop, an
httpx2 client over its ASGI transport, tether's fake Messages API on loopback as the model), a gate
that holds model calls, and ports for the tests against a real uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2

from tether import AnthropicClient, Settings
from tether.server.app import create_app, service_of
from tether.server.service import Service, ServiceOptions
from tether.testing import FakeAPI
from tether.testing.gate import Gate

TETHER = [sys.executable, "-m", "tether.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            assert process is None or process.poll() is None, f"the process for port {port} exited"
            time.sleep(0.05)


async def until(predicate, what: str = "the condition", timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@dataclass
class Harness:
    """One service in process: its app, a client, the service object and the fake's key."""

    client: httpx2.AsyncClient
    service: Service
    key: str
    fake: FakeAPI
    gate: Gate | None

    async def token(self, scopes: str = "read,run,admin", tenant: str = "team-a") -> str:
        _, text = await self.service.tokens.create(f"test {scopes}", scopes, tenant)
        return text

    async def run(self, token: str, **body) -> dict:
        response = await self.client.post("/v1/runs", json=body, headers=bearer(token))
        assert response.status_code == 202, response.text
        return response.json()

    async def settled(self, run_id: str, *statuses: str) -> dict:
        statuses = statuses or ("completed", "failed", "idle", "cancelled")
        run = self.service.manager.get(run_id)
        await until(lambda: run.status in statuses and (run.handle is None or run.active),
                    f"run {run_id} to reach {statuses}")
        return run.to_dict()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def settings_for(fake: FakeAPI, key: str, tmp_path: Path, **extra) -> Settings:
    empty = tmp_path / "tether.toml"
    empty.touch()
    return Settings.load(path=empty, environ={}, **{
        "api.api_key": key, "api.base_url": fake.base_url, "store.url": str(tmp_path / "sessions.db"),
        "api.max_retries": 0, **extra})


@contextlib.asynccontextmanager
async def open_harness(fake: FakeAPI, key: str, tmp_path: Path, *, gated: bool = False,
                       options: ServiceOptions | None = None, **settings) -> AsyncIterator[Harness]:
    config = settings_for(fake, key, tmp_path, **settings)
    base = AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=0)
    gate = Gate(base) if gated else None
    options = options or ServiceOptions(workspaces=tmp_path / "workspaces", heartbeat=0.2)
    app = create_app(config, options, base=gate or base)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://tether.test") as client:
                yield Harness(client, service_of(app), key, fake, gate)
    finally:
        await base.aclose()



class LiveService:
    """The app under a real uvicorn on a loopback port, in a thread with its own event loop;
    ``close`` (a coroutine function) runs in that loop once the server has stopped."""

    def __init__(self, app, close=None) -> None:
        import uvicorn

        self.app, self.close = app, close
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False,
                                                    timeout_graceful_shutdown=2))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True, name="tether-live-service")

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self.server.serve(sockets=[self.socket]))
            if self.close is not None:
                self.loop.run_until_complete(self.close())
        finally:
            self.loop.close()

    def __enter__(self) -> LiveService:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info) -> None:
        self.loop.call_soon_threadsafe(self.service.drain)  # as `tether serve` does on SIGTERM
        self.server.should_exit = True
        self.thread.join(20)
        self.socket.close()

    def call(self, function):
        """Run ``function()`` in the service's loop and return its result."""
        async def call():
            return function()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    @property
    def service(self) -> Service:
        return service_of(self.app)


def sse_frames(response) -> Iterator[dict]:
    """The frames of a streamed SSE response as they arrive: fields by name, ``data`` parsed;
    a comment is a frame ``{"comment": text}``."""
    fields: dict = {}
    for line in response.iter_lines():
        if line == "":
            if fields:
                yield fields
            fields = {}
        elif line.startswith(":"):
            fields["comment"] = line[1:].strip()
        else:
            name, _, value = line.partition(": ")
            fields[name] = json.loads(value) if name == "data" else value
    if fields:
        yield fields
