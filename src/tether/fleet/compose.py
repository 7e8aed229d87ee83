"""One call to get a production ``ModelClient``: the fleet's wrappers stacked in their order.

::

    BudgetClient             reserve the worst case once per model call; settle at the real cost
     └ FallbackClient         the next model when this one's circuit is open or it failed after retries
        └ RetryingClient      backoff and retry-after, per attempt
           └ CircuitBreakerClient   fail fast while the model's endpoint is down
              └ RateLimitedClient   admit each attempt; read the headers; a 429 pauses the bucket
                 └ AnthropicClient(max_retries=0)

Why this order:

- **Budget outermost**: a call is paid once, whatever retries or fallbacks it takes, and it is
  refused before it waits for anything; it settles at the prices of the model that served it.
- **Fallback above retry**: a model is abandoned only after its own retries are spent (or at once
  when its circuit is open); the fallback model then gets retries of its own.
- **Retry above breaker and limiter**: every attempt is counted by the breaker (so a burst of
  failures opens the circuit within one call's retries) and admitted again by the limiter (a retry
  costs a request and tokens like any call, and waits out a 429 pause with everyone else). The
  breaker's ``CircuitOpen`` is not retryable, so it reaches the fallback at once.
- **Breaker above limiter**: an open circuit fails fast without queueing for, or spending, rate
  limit capacity.
- **Limiter innermost**: it sees each HTTP attempt exactly once, with its headers and its 429.
- **The SDK does not retry** (``max_retries=0``): ``RetryingClient`` does, above the limiter,
  where retries are paced; SDK retries would bypass both the limiter and the breaker.

Every layer is optional: pass ``None`` (or leave the chain empty) to leave it out. State that is
shared between runs (the limiter's buckets, the breakers, the budget ledger, and the base client's
connection pool) is passed in, so build them once per process and a client per run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tether.api.catalog import Catalog
from tether.api.client import AnthropicClient, ModelClient
from tether.config import Settings
from tether.fleet.breaker import Breakers, CircuitBreakerClient
from tether.fleet.budget import BudgetClient, BudgetLedger
from tether.fleet.fallback import FallbackClient
from tether.fleet.ratelimit import RateLimitedClient, RateLimiter
from tether.fleet.retry import RetryingClient


@dataclass(frozen=True)
class FleetOptions:
    """How the wrappers behave; grouped here because ``Settings`` has no fleet section yet."""

    retry_attempts: int = 4  # calls in all; 1: no retries
    retry_base: float = 0.5
    retry_cap: float = 8.0
    retry_jitter: float = 0.25
    max_retry_after: float = 60.0
    fallback: tuple[str, ...] = ()  # models to try, in order, after the request's model
    keep_1h_ttl: bool = False  # on fallback models
    priority: int = 0  # the rate limiter serves higher first
    output_reserve: int | None = None  # cap on the output tokens a budget reserves per call


def base_client(settings: Settings, *, retries: bool = True) -> AnthropicClient:
    """The SDK client of ``settings.api``; with ``max_retries=0`` when ``RetryingClient`` retries."""
    api = settings.api
    return AnthropicClient(
        api_key=api.api_key, base_url=api.base_url, timeout=api.timeout,
        max_retries=0 if retries else api.max_retries,
    )


def scopes_for(*, run: str | None = None, queue: str | None = None, fleet: str | None = "fleet") -> list[str]:
    """Budget scopes: ``run:<id>``, ``queue:<name>``, and the fleet's."""
    return [s for s in (run and f"run:{run}", queue and f"queue:{queue}", fleet) if s]


def build_client(
    settings: Settings,
    options: FleetOptions | None = None,
    *,
    base: ModelClient | None = None,
    limiter: RateLimiter | None = None,
    breakers: Breakers | None = None,
    budgets: BudgetLedger | None = None,
    scopes: Sequence[str] = (),
    catalog: Catalog | None = None,
) -> ModelClient:
    """The stack above for ``settings`` (its model is the first of the fallback chain).

    ``base`` defaults to a new ``AnthropicClient`` from ``settings.api`` (``max_retries=0`` when
    retrying; close it with the returned client's ``aclose``). Pass one ``base`` to every client of
    a fleet to share its connection pool. ``scopes`` (see ``scopes_for``) are the budgets charged.
    """
    options = options or FleetOptions()
    retrying = options.retry_attempts > 1
    bottom: ModelClient = base if base is not None else base_client(settings, retries=retrying)
    client = bottom
    if limiter is not None:
        client = RateLimitedClient(client, limiter, priority=options.priority)
    if breakers is not None:
        endpoint = getattr(bottom, "base_url", None) or settings.api.base_url or "https://api.anthropic.com"
        client = CircuitBreakerClient(client, breakers, endpoint=endpoint)
    if retrying:
        client = RetryingClient(client, options.retry_attempts, options.retry_base, options.retry_cap,
                                options.retry_jitter, max_retry_after=options.max_retry_after)
    if options.fallback:
        models = [settings.model, *(m for m in options.fallback if m != settings.model)]
        client = FallbackClient.over(client, models, catalog=catalog, keep_1h_ttl=options.keep_1h_ttl)
    if budgets is not None:
        client = BudgetClient(client, budgets, scopes or scopes_for(), catalog=catalog,
                              output_reserve=options.output_reserve)
    return client


def layers(client: ModelClient) -> list[str]:
    """The class names of a stack, outermost first (for logs and tests)."""
    names = []
    while client is not None:
        names.append(type(client).__name__)
        chain = getattr(client, "chain", None)
        client = chain[0][1] if chain else getattr(client, "inner", None)
    return names
