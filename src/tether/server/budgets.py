"""Tenant budgets: the dollars a tenant's runs may spend per calendar month (UTC), from ``[server.budgets]``.

``TenantBudgets`` is the ``BudgetLedger`` (``tether.fleet.budget``) of the service: every run's
client is a ``BudgetClient`` that charges the scope ``tenant:<name>`` of the tenant of the token
that started the run, so all the runs of a tenant share its budget.

- **The window** is the calendar month in UTC; a budget renews on the 1st at 00:00 UTC.
- **The count** is read from the store when the service starts, when a month begins and every
  ``REFRESH`` (30 s) after: the dollars of the turns recorded this month in the tenant's sessions
  (the sums of ``/v1/usage?by=tenant``), so it survives a restart and several service processes on
  one store see each other's spending within half a minute. In between, each model call adds its
  cost as it settles. Deleting a session removes its turns from the next read.
- **Spent** means the count reached the limit. Then the tenant's model calls are refused with
  ``BudgetExhausted`` (category ``budget_exhausted``), so its running runs stop at their next turn,
  and ``check`` refuses its new runs and follow-ups with the service's error body (HTTP 402). The
  limit holds between calls, not within one: calls already under way finish, so a tenant can end
  a little over by what those calls cost. (The fleet's ``Budgets`` reserves each call's worst case
  instead, which would refuse calls that a small remaining budget could well pay for.)
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from tether.config import BudgetSettings
from tether.errors import ConfigError, UserError
from tether.fleet.budget import ZERO, BudgetStatus
from tether.server.errors import ServiceError
from tether.server.tokens import check_tenant

SpentSince = Callable[[dt.datetime], Awaitable[Mapping[str, float]]]  # tenant -> dollars since a moment
PREFIX = "tenant:"
REFRESH = dt.timedelta(seconds=30)  # how old the count read from the store may grow


def scope(tenant: str) -> str:
    return f"{PREFIX}{tenant}"


def month_of(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: dt.datetime) -> dt.datetime:
    return (start + dt.timedelta(days=32)).replace(day=1)


def _dollars(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _usd(amount: Decimal) -> str:
    return f"${amount:.2f}" if amount >= 1 else f"${amount:.4f}"


class TenantBudgets:
    """The ``BudgetLedger`` of tenants' monthly budgets (see the module docstring)."""

    def __init__(self, settings: BudgetSettings, spent_since: SpentSince,
                 *, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        for tenant in settings.tenants:
            try:
                check_tenant(tenant)
            except UserError as exc:
                raise ConfigError(f"server.budgets.tenants names {tenant[:80]!r}, which cannot be a tenant: "
                                  f"{exc}") from None
        self.settings = settings
        self._spent_since, self._clock = spent_since, clock
        self._limits: dict[str, Decimal | None] = {}  # set_limit's, by scope, over the settings
        self.period: dt.datetime | None = None  # the start of the month counted
        self._read_at = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._spent: dict[str, Decimal] = {}
        self._held: dict[str, Decimal] = {}
        self._holds: dict[str, tuple[tuple[str, ...], Decimal]] = {}
        self._loading = asyncio.Lock()

    async def load(self) -> None:
        """Read this month's spending from the store, unless it was read this month less than ``REFRESH`` ago."""
        async with self._loading:
            now = self._clock()
            start = month_of(now)
            if start == self.period and now - self._read_at < REFRESH:
                return
            spent = await self._spent_since(start)
            self._spent = {scope(tenant): Decimal(str(dollars)) for tenant, dollars in spent.items() if tenant}
            self.period, self._read_at = start, now

    def limit_of(self, name: str) -> Decimal | None:
        if name in self._limits:
            return self._limits[name]
        return _dollars(self.settings.limit_for(name.removeprefix(PREFIX)))

    # --- BudgetLedger --------------------------------------------------------------------------

    async def reserve(self, hold: str, scopes: Sequence[str], amount: Decimal) -> str | None:
        await self.load()
        for name in scopes:
            limit = self.limit_of(name)
            if limit is not None and self._spent.get(name, ZERO) >= limit:
                return name
        for name in scopes:
            self._held[name] = self._held.get(name, ZERO) + amount
        self._holds[hold] = (tuple(scopes), amount)
        return None

    async def settle(self, hold: str, amount: Decimal) -> None:
        scopes, held = self._holds.pop(hold, ((), ZERO))
        for name in scopes:
            self._held[name] -= held
            self._spent[name] = self._spent.get(name, ZERO) + amount

    async def status(self, name: str) -> BudgetStatus:
        await self.load()
        return BudgetStatus(name, self.limit_of(name), self._spent.get(name, ZERO), self._held.get(name, ZERO))

    async def set_limit(self, name: str, limit: Decimal | float | None) -> None:
        self._limits[name] = None if limit is None else Decimal(str(limit))

    # --- for the service -----------------------------------------------------------------------

    async def check(self, tenant: str) -> None:
        """Refuse new work of ``tenant`` (``budget_exhausted``, 402) once its budget is spent."""
        status = await self.status(scope(tenant))
        if status.limit is None or status.spent < status.limit:
            return
        assert self.period is not None
        raise ServiceError("budget_exhausted", (
            f"the budget of tenant {tenant!r} is spent: {_usd(status.spent)} of {_usd(status.limit)} in "
            f"{self.period:%Y-%m} (UTC). It renews on {next_month(self.period):%Y-%m-%d}; an operator can "
            "raise it under [server.budgets] in tether.toml"))

    def tenants(self) -> set[str]:
        """The tenants named in the settings or with spending this month."""
        return set(self.settings.tenants) | {name.removeprefix(PREFIX) for name in self._spent}

    async def view(self, tenants: Iterable[str]) -> dict[str, Any]:
        """The budgets of ``tenants`` this month: limit, spent and remaining (None: no limit), for ``/v1/usage``."""
        await self.load()
        assert self.period is not None
        rows = []
        for tenant in sorted(set(tenants)):
            limit, spent = self.limit_of(scope(tenant)), self._spent.get(scope(tenant), ZERO)
            rows.append({"tenant": tenant, "limit": None if limit is None else float(limit), "spent": float(spent),
                         "remaining": None if limit is None else float(max(limit - spent, ZERO)),
                         "exhausted": limit is not None and spent >= limit})
        return {"period": f"{self.period:%Y-%m}", "renews_at": next_month(self.period).isoformat(),
                "tenants": rows}
