"""Running the fake: ``FakeAPI`` on loopback in a background thread, or ``serve`` in the foreground.

    with FakeAPI() as fake:
        fake.script(["Hello!"], key="test-key")
        client = anthropic.Anthropic(base_url=fake.base_url, api_key="test-key")

``FakeAPI`` binds 127.0.0.1 on a free port before uvicorn starts, so ``base_url`` is known at once
and startup takes a few milliseconds; ``stop`` (or leaving the ``with``) shuts uvicorn down and
joins its thread. Every control method takes ``key``: the API key it applies to, or ``None`` for
the default that applies to every key without settings of its own.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Literal

import uvicorn

from tether.api.catalog import Catalog
from tether.cli.aio import tune_gc
from tether.testing.fake.app import FakeApp, FakeSettings
from tether.testing.fake.behaviour import Behaviour, Script, ScriptItem, echo
from tether.testing.fake.clock import Clock, ManualClock, SystemClock
from tether.testing.fake.coding_agent import CodingAgent
from tether.testing.fake.faults import Fault
from tether.testing.fake.ratelimit import Limits, RateLimiter
from tether.testing.fake.state import Latency, RecordedRequest, Registry
from tether.testing.fake.transport import FakeProtocol

BehaviourName = Literal["echo", "coding-agent"]
STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 5.0


def _uvicorn_config(app: FakeApp, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http=FakeProtocol,
        lifespan="off",
        access_log=False,
        server_header=False,
        proxy_headers=False,  # nothing reads the client address or scheme
        timeout_graceful_shutdown=1,
        backlog=4096,
        timeout_keep_alive=60,  # longer than clients keep idle connections (httpx: 5 s), as servers do
        **options,
    )


class FakeAPI:
    """The fake Messages API on a real socket, with controls for scripts, faults and limits.

    ``behaviour`` answers keys without a script of their own: a callable, ``"echo"`` (the
    default) or ``"coding-agent"`` (``CodingAgent(turns=50, seed=0)``). ``clock`` drives the cache
    and rate-limit models (a ``ManualClock`` by default: time moves only when a test says so);
    delays and stalls are real time.
    """

    def __init__(
        self,
        *,
        behaviour: Behaviour | BehaviourName | None = None,
        clock: Clock | None = None,
        limits: Limits | None = None,
        settings: FakeSettings | None = None,
        catalog: Catalog | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        record_limit: int | None = 10_000,
    ) -> None:
        self.clock: Clock = clock if clock is not None else ManualClock()
        self.registry = Registry.create(self.clock, _behaviour(behaviour), limits, record_limit)
        self.app = FakeApp(self.registry, settings, catalog)
        self._address = (host, port)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._socket is None:
            raise RuntimeError("the fake API is not running; use it as a context manager or call start()")
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeAPI:
        if self._server is not None:
            return self
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(self._address)
        self._server = uvicorn.Server(_uvicorn_config(self.app, log_level="warning"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="tether-fake-api", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake API did not start")
            time.sleep(0.001)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self.app.closing.set()
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT)
        if thread.is_alive():  # a stalled stream is still open: cut it
            server.force_exit = True
            thread.join(SHUTDOWN_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        self.app.closing.clear()

    def __enter__(self) -> FakeAPI:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeAPI:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    # --- behaviour -------------------------------------------------------------------------------

    def script(
        self, replies: Iterable[ScriptItem], *, key: str | None = None, then: Behaviour = echo
    ) -> Script:
        """Answer the next requests with ``replies`` in order (turns, shorthand, or faults), then ``then``."""
        script = Script(replies, then)
        self.registry.behaviours[key] = script
        return script

    def behave(self, behaviour: Behaviour, *, key: str | None = None) -> None:
        """Answer every request of ``key`` with ``behaviour(request)``."""
        self.registry.behaviours[key] = behaviour

    # --- faults and timing ---------------------------------------------------------------------

    def fail_next(self, *faults: Fault, key: str | None = None) -> None:
        """Inject ``faults`` into the next requests, one each, before their behaviour answers."""
        self.registry.fault_schedule(key, create=True).push(faults)

    def random_faults(
        self, rate: float, *, seed: int = 0, kinds: Sequence[Fault] | None = None, key: str | None = None
    ) -> None:
        """Fail each request with probability ``rate``, with a fault drawn from ``kinds``."""
        self.registry.fault_schedule(key, create=True).randomly(rate, seed, kinds)

    def clear_faults(self, *, key: str | None = None) -> None:
        self.registry.fault_schedule(key).clear()

    def set_latency(
        self, first_token: float = 0.0, per_token: float = 0.0, *, key: str | None = None
    ) -> None:
        """Real delays (seconds): before ``message_start``, and per streamed output token."""
        self.registry.latencies[key] = Latency(first_token, per_token)

    def set_limits(
        self, limits: Limits, *, per_model: dict[str, Limits] | None = None, key: str | None = None
    ) -> None:
        """Rate limits for ``key`` (fresh, full buckets)."""
        self.registry.limiters[key] = RateLimiter(self.clock, limits, per_model)

    # --- what was received ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.registry.requests()

    def requests_for(self, key: str) -> list[RecordedRequest]:
        return self.registry.requests(key)

    def last_request(self, key: str | None = None) -> RecordedRequest:
        records = self.registry.requests(key)
        if not records:
            raise LookupError("no request received" + (f" with key {key!r}" if key else ""))
        return records[-1]


def _behaviour(choice: Behaviour | BehaviourName | None, seed: int = 0, turns: int = 50) -> Behaviour | None:
    if choice == "echo":
        return Script()
    if choice == "coding-agent":
        return CodingAgent(turns=turns, seed=seed)
    if isinstance(choice, str):
        raise ValueError(f"unknown behaviour {choice!r}; expected 'echo', 'coding-agent' or a callable")
    return choice


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    behaviour: Behaviour | BehaviourName | None = None,
    agent_turns: int = 50,
    agent_seed: int = 0,
    limits: Limits | None = None,
    settings: FakeSettings | None = None,
    fault_rate: float = 0.0,
    fault_seed: int = 0,
    latency: Latency | None = None,
    record_limit: int | None = 1_000,
    log_level: str = "info",
) -> None:
    """Run the fake in the foreground until interrupted (``tether fake-api``), on the real clock.

    ``behaviour`` is a ``Behaviour`` or one of the names ``"echo"`` (the default) and
    ``"coding-agent"`` (a ``CodingAgent`` of ``agent_turns`` turns from ``agent_seed``);
    ``fault_rate`` > 0 fails that share of requests with the default fault mix.
    """
    settings = settings or FakeSettings()
    registry = Registry.create(
        SystemClock(), _behaviour(behaviour, agent_seed, agent_turns), limits, record_limit
    )
    if fault_rate:
        registry.fault_schedule(None).randomly(fault_rate, fault_seed)
    if latency is not None:
        registry.latencies[None] = latency
    app = FakeApp(registry, settings)
    # This process is the fake's alone, and thousands of requests stay alive through their delays:
    # tuned as every tether command is, with a younger generation larger still (measured).
    tune_gc(young=50_000)
    uvicorn.Server(_uvicorn_config(app, host=host, port=port, log_level=log_level)).run()
