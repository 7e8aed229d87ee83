"""Dollar budgets shared by runs, queues (tenants) and the whole fleet.

A budget is a limit in dollars on a *scope*, a name such as ``"run:<id>"``, ``"queue:<name>"``
or ``"fleet"``. ``BudgetClient`` wraps a ``ModelClient`` for one set of scopes: before each model
call it *reserves* the call's worst-case cost in every scope at once, and refuses the call with
``BudgetExhausted`` when the reservation does not fit one of them; after the call it *settles*
the reservation with the real cost (``tether.api.cost.cost_of`` of the response's usage, at the
prices of the model that served it). So a spent budget refuses new work, and a running agent stops
at its next model call: ``BudgetExhausted`` is a ``LimitExceeded``, which ends the run with its
partial result and the outcome ``budget_exhausted``.

The worst case of a call: every prompt token (``count_request``) at the input price (at the cache
write price of the request's TTL when the request is cached), plus ``max_tokens`` at the output
price, at the long-prompt prices when the prompt is past the model's threshold. ``output_reserve``
caps the output part for callers who would rather risk overspending by a little than reserve
``max_tokens`` (which is large with extended output).

A failed call settles at what its stream reported before failing (the input of ``message_start``),
else at zero: the API does not bill a refused call.

The ledger is behind ``BudgetLedger``, four methods that a shared store (PostgreSQL, Redis) can
implement atomically; ``Budgets`` is the in-process one. Amounts are ``Decimal`` dollars.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from tether.api.catalog import Catalog, default_catalog
from tether.api.client import ModelClient
from tether.api.cost import cost_of
from tether.api.stream import MessageComplete, MessageStart, StreamEvent
from tether.api.tokens import count_request
from tether.api.types import MessagesRequest, Response, Usage
from tether.errors import LimitExceeded
from tether.fleet.retry import closing_stream

_MILLION = Decimal(1_000_000)
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    scope: str
    limit: Decimal | None  # None: no limit on this scope
    spent: Decimal
    held: Decimal  # reserved by calls under way

    @property
    def remaining(self) -> Decimal | None:
        return None if self.limit is None else self.limit - self.spent - self.held


class BudgetLedger(Protocol):
    """Budgets by scope. ``reserve`` and ``settle`` are atomic across every scope they name."""

    async def reserve(self, hold: str, scopes: Sequence[str], amount: Decimal) -> str | None:
        """Hold ``amount`` in every scope under the id ``hold``, if it fits them all: then return
        None. Otherwise hold nothing and return the first scope it does not fit."""
        ...

    async def settle(self, hold: str, amount: Decimal) -> None:
        """Replace the hold by ``amount`` really spent (in the same scopes); an unknown hold is ignored."""
        ...

    async def status(self, scope: str) -> BudgetStatus: ...

    async def set_limit(self, scope: str, limit: Decimal | None) -> None: ...


class BudgetExhausted(LimitExceeded):
    """A budget cannot pay for the next model call."""

    category = "budget_exhausted"

    def __init__(self, message: str, *, scope: str, budget: Decimal | None, spent: Decimal,
                 needed: Decimal) -> None:
        super().__init__(message, limit=f"budget:{scope}")
        self.scope = scope
        self.budget = budget
        self.spent = spent
        self.needed = needed


def _dollars(value: Decimal | float | str | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


class Budgets:
    """``BudgetLedger`` in this process. ``limits`` maps scopes to dollars; a key ending in ``*``
    (``"run:*"``) is the default limit of every scope it prefixes."""

    def __init__(self, limits: Mapping[str, Decimal | float | str] | None = None) -> None:
        self._limits: dict[str, Decimal | None] = {k: _dollars(v) for k, v in (limits or {}).items()}
        self._spent: dict[str, Decimal] = {}
        self._held: dict[str, Decimal] = {}
        self._holds: dict[str, tuple[tuple[str, ...], Decimal]] = {}

    def limit_of(self, scope: str) -> Decimal | None:
        if scope in self._limits:
            return self._limits[scope]
        prefixes = [k for k in self._limits if k.endswith("*") and scope.startswith(k[:-1])]
        return self._limits[max(prefixes, key=len)] if prefixes else None

    async def reserve(self, hold: str, scopes: Sequence[str], amount: Decimal) -> str | None:
        for scope in scopes:
            limit = self.limit_of(scope)
            if limit is not None and self._used(scope) + amount > limit:
                return scope
        for scope in scopes:
            self._held[scope] = self._held.get(scope, ZERO) + amount
        self._holds[hold] = (tuple(scopes), amount)
        return None

    async def settle(self, hold: str, amount: Decimal) -> None:
        scopes, held = self._holds.pop(hold, ((), ZERO))
        for scope in scopes:
            self._held[scope] -= held
            self._spent[scope] = self._spent.get(scope, ZERO) + amount

    async def status(self, scope: str) -> BudgetStatus:
        return BudgetStatus(scope, self.limit_of(scope), self._spent.get(scope, ZERO), self._held.get(scope, ZERO))

    async def set_limit(self, scope: str, limit: Decimal | float | str | None) -> None:
        self._limits[scope] = _dollars(limit)

    def _used(self, scope: str) -> Decimal:
        return self._spent.get(scope, ZERO) + self._held.get(scope, ZERO)


async def exhausted(ledger: BudgetLedger, scopes: Sequence[str]) -> str | None:
    """The first of ``scopes`` with nothing left (for refusing new work), or None."""
    for scope in scopes:
        remaining = (await ledger.status(scope)).remaining
        if remaining is not None and remaining <= 0:
            return scope
    return None


def estimate_cost(request: MessagesRequest, catalog: Catalog | None = None,
                  output_reserve: int | None = None) -> Decimal:
    """The most ``request`` can cost (see the module docstring)."""
    info = (catalog or default_catalog()).get(request.model)
    prompt = count_request(request.body())
    prices = info.prices_for(prompt)
    per_input = prices.input
    if request.cache is not None and request.cache.breakpoints:
        ttl = (request.cache.control or {}).get("ttl")
        per_input = max(per_input, prices.cache_write_1h if ttl == "1h" else prices.cache_write_5m)
    output = request.max_tokens if output_reserve is None else min(request.max_tokens, output_reserve)
    return (Decimal(prompt) * Decimal(str(per_input)) + Decimal(output) * Decimal(str(prices.output))) / _MILLION


class BudgetClient:
    """A ``ModelClient`` whose calls are paid from ``scopes`` of ``ledger`` (see the module docstring)."""

    def __init__(
        self,
        inner: ModelClient,
        ledger: BudgetLedger,
        scopes: Sequence[str],
        *,
        catalog: Catalog | None = None,
        output_reserve: int | None = None,
    ) -> None:
        self.inner, self.ledger, self.scopes = inner, ledger, list(scopes)
        self.catalog = catalog or default_catalog()
        self.output_reserve = output_reserve

    async def _reserve(self, request: MessagesRequest) -> str:
        needed = estimate_cost(request, self.catalog, self.output_reserve)
        hold = uuid.uuid4().hex
        refused = await self.ledger.reserve(hold, self.scopes, needed)
        if refused is None:
            return hold
        status = await self.ledger.status(refused)
        budget = f"${status.limit:.4f}" if status.limit is not None else "its budget"
        raise BudgetExhausted(
            f"the budget of {refused} is exhausted: ${status.spent + status.held:.4f} of {budget} is spent "
            f"or held, and the next model call may cost up to ${needed:.4f}",
            scope=refused, budget=status.limit, spent=status.spent, needed=needed,
        )

    async def _settle(self, hold: str, usage: Usage | None, model: str) -> None:
        amount = cost_of(usage, self.catalog.get(model)).total if usage is not None else ZERO
        await self.ledger.settle(hold, amount)

    async def stream(self, request: MessagesRequest) -> AsyncIterator[StreamEvent]:
        hold = await self._reserve(request)
        usage, model = None, request.model
        try:
            async with closing_stream(self.inner.stream(request)) as events:
                async for event in events:
                    if isinstance(event, MessageStart):
                        usage, model = event.usage, event.model
                    elif isinstance(event, MessageComplete):
                        usage, model = event.response.usage, event.response.model
                    yield event
        finally:
            await self._settle(hold, usage, model)

    async def create(self, request: MessagesRequest) -> Response:
        hold = await self._reserve(request)
        response = None
        try:
            response = await self.inner.create(request)
            return response
        finally:
            await self._settle(hold, response.usage if response else None, response.model if response else request.model)

    async def count_tokens(self, request: MessagesRequest) -> int:
        return await self.inner.count_tokens(request)

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()
