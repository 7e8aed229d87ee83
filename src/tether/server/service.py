"""``Service``: what the routes work with, opened when the app starts and closed when it stops.

    async with Service.open(settings) as service: ...

Opening: the session store (``store.url``), the token store beside it, the tenants' budgets when
``[server.budgets]`` sets any (this month's spending read from the store; ``budgets``), the model
client stack (``tether.fleet.compose``: retries, circuit breakers and a rate limiter shared by
every run, over one SDK client whose calls are metered; the budget of the run's tenant on top),
and the ``RunManager`` with its ``Fleet``; then the runs the previous process stopped at shutdown
are resumed.

Closing (the app's lifespan ending; ``tether serve`` calls ``drain`` first, on SIGTERM): new runs
are refused, event streams end, active runs are cancelled and recorded for resume, then the
clients and the store are closed, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from tether.api.catalog import Catalog
from tether.api.client import ModelClient
from tether.config import Settings
from tether.errors import ConfigError
from tether.fleet.breaker import Breakers
from tether.fleet.compose import FleetOptions, base_client, build_client
from tether.fleet.ratelimit import RateLimiter
from tether.fleet.spec import RunSpec
from tether.server.auth import Authenticator
from tether.server.budgets import TenantBudgets, scope
from tether.server.eventlog import DEFAULT_CAPACITY
from tether.server.manager import RunManager
from tether.server.metrics import MeteredClient, Metrics
from tether.server.redact import Redactor
from tether.server.sse import StreamHub
from tether.server.tokens import TokenStore
from tether.server.usage import dollars_by_tenant
from tether.sessions import Sessions
from tether.store.base import SessionStore
from tether.store.sql import open_store

log = logging.getLogger("tether.server")


@dataclass(frozen=True)
class ServiceOptions:
    """How the service behaves beyond ``Settings.server``: mostly sizes, for tests and benchmarks."""

    event_log_size: int = DEFAULT_CAPACITY  # frames kept per run for replay (see ``eventlog``)
    keep_settled: int = 256  # resting runs kept in memory; older ones are forgotten (their sessions stay)
    heartbeat: float = 15.0  # seconds of silence before an event stream sends a keep-alive comment
    max_body: int = 1 << 20  # bytes of a request body
    workspaces: Path | None = None  # where runs with tools work, one folder per session
    resume: bool = True  # resume the runs the previous process stopped


class Service:
    def __init__(self, settings: Settings, options: ServiceOptions, *, store: SessionStore, tokens: TokenStore,
                 manager: RunManager, metrics: Metrics, breakers: Breakers, redact: Redactor) -> None:
        self.settings, self.options = settings, options
        self.store, self.sessions, self.budgets = store, manager.sessions, manager.budgets
        self.tokens, self.auth = tokens, Authenticator(tokens if settings.server.auth else None)
        self.manager, self.metrics, self.breakers, self.redact = manager, metrics, breakers, redact
        self.streams = StreamHub(options.heartbeat)
        self.draining = False

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings, options: ServiceOptions | None = None, *,
                   base: ModelClient | None = None) -> AsyncIterator[Service]:
        """The service for ``settings``. ``base`` replaces the SDK client at the bottom of the stack."""
        options = options or ServiceOptions()
        if not settings.server.auth and settings.profile != "dev":
            raise ConfigError(f"server.auth = false is for the dev profile only, not {settings.profile}")
        redact = Redactor([settings.api.api_key])
        metrics, breakers = Metrics(), Breakers()
        async with contextlib.AsyncExitStack() as stack:
            store = await open_store(settings.store.url)
            stack.push_async_callback(store.close)
            owned = base is None
            bottom = MeteredClient(base if base is not None else base_client(settings), metrics)
            if owned:
                stack.push_async_callback(bottom.aclose)
            workspaces = options.workspaces or platformdirs.user_data_path("tether") / "service-workspaces"
            budgets = None
            if settings.server.budgets.enabled:
                budgets = TenantBudgets(settings.server.budgets, lambda since: dollars_by_tenant(store, since))
                await budgets.load()
            manager = RunManager(_client_factory(settings, bottom, breakers, budgets), Sessions(store), settings,
                                 metrics=metrics, workspaces=workspaces, log_capacity=options.event_log_size,
                                 keep_settled=options.keep_settled, redact=redact, budgets=budgets)
            service = cls(settings, options, store=store, tokens=TokenStore(store.engine), manager=manager,
                          metrics=metrics, breakers=breakers, redact=redact)
            await stack.enter_async_context(manager)
            heartbeat = asyncio.get_running_loop().create_task(service.streams.run(), name="tether-heartbeat")
            stack.push_async_callback(_cancelled, heartbeat)
            stack.callback(service.drain)
            if not settings.server.auth:
                log.warning("authentication is OFF (server.auth = false, profile %s): anyone who can reach "
                            "this port can run agents", settings.profile)
            if options.resume:
                await manager.resume()
            yield service

    def drain(self) -> None:
        """Refuse new runs and end every event stream (the first step of a shutdown)."""
        self.draining = True
        self.streams.close()

    def public_settings(self) -> dict:
        """The effective settings with every secret masked (``/v1/config``)."""
        data = self.settings.redacted()
        if data["api"].get("base_url"):
            data["api"]["base_url"] = re.sub(r"//[^@/]*@", "//***@", data["api"]["base_url"])
        for name, server in (data.get("mcp") or {}).items():
            data["mcp"][name] = {k: ({h: "***" for h in v} if k in ("env", "headers") and isinstance(v, dict) else v)
                                 for k, v in dict(server).items()}
        return data


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _client_factory(settings: Settings, base: ModelClient, breakers: Breakers, budgets: TenantBudgets | None):
    """A client per run over the shared ``base``: retries, breakers and one rate limiter for all;
    with budgets, each run's calls are paid from its tenant's (the spec's queue)."""
    limiter = RateLimiter(key="service")
    options = FleetOptions(retry_attempts=settings.api.max_retries + 1)
    catalog = Catalog.load(settings.models)

    def client_for(spec: RunSpec) -> ModelClient:
        return build_client(dataclasses.replace(settings, model=spec.model or settings.model), options,
                            base=base, limiter=limiter, breakers=breakers, budgets=budgets,
                            scopes=[scope(spec.queue)], catalog=catalog)

    return client_for
