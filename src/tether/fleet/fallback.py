"""Model fallback: when a model is down, the next model of a chain serves the call.

``FallbackClient`` tries the request's model first, then each model after it in the chain (all of
the chain when the request's model is not in it). It moves on when a call fails with
``CircuitOpen`` (the model's breaker is open), 529, another 5xx, an ``event: error`` of an outage
type, or a connection error, i.e. after the retries below it are spent. Any other error, a 429
included, is raised: another model would not fix it.

The request is adapted to each fallback model with ``adapt``: the model id; ``max_tokens``
capped at the model's max output; ``thinking`` fitted to the model's catalog entry (adaptive,
manual budget, or none); beta headers dropped (they were chosen for the primary); and a ``1h``
cache TTL lowered to the default ``5m`` (a model switch invalidates the whole cache, and a
fallback serves only while the primary is down, so a 1h write at twice the input price rarely pays
back). ``Response.model`` says which model served.

Like retries, fallback of a stream happens only before its first event reaches the consumer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from tether.api.catalog import Catalog, ModelInfo, default_catalog
from tether.api.client import ModelClient
from tether.api.request import MIN_THINKING_BUDGET
from tether.api.stream import StreamEvent
from tether.api.types import Json, MessagesRequest, Response
from tether.fleet.breaker import CircuitOpen, is_outage
from tether.fleet.retry import closing_stream

OnFallback = Callable[[str, str, BaseException], None]


def falls_back(error: BaseException) -> bool:
    """Whether another model should take a call that failed with ``error``."""
    return isinstance(error, CircuitOpen) or is_outage(error)


def adapt_thinking(thinking: Json | None, model: ModelInfo, max_tokens: int) -> Json | None:
    """``thinking`` as ``model`` accepts it, with ``max_tokens`` of room."""
    kind = (thinking or {}).get("type")
    if kind in (None, "disabled"):
        if model.thinking == "adaptive" and not model.can_disable:
            return {"type": "adaptive"}
        return thinking if kind is None or model.can_disable else None
    if model.thinking == "none":
        return None
    if model.thinking == "adaptive" and (kind != "enabled" or not model.budget_allowed):
        return {"type": "adaptive"}
    wanted = thinking.get("budget_tokens") if kind == "enabled" else None  # type: ignore[union-attr]
    budget = min(wanted or max_tokens // 2, max_tokens - 1)
    if budget < MIN_THINKING_BUDGET:
        return None
    return {"type": "enabled", "budget_tokens": budget}


def _short_ttl(control: Json | None) -> Json | None:
    if control and control.get("ttl") == "1h":
        return {k: v for k, v in control.items() if k != "ttl"}
    return control


def adapt(request: MessagesRequest, model: ModelInfo, *, keep_1h_ttl: bool = False) -> MessagesRequest:
    """A copy of ``request`` for ``model`` (see the module docstring)."""
    max_tokens = min(request.max_tokens, model.max_output)
    changes: dict[str, Any] = {
        "model": model.id,
        "max_tokens": max_tokens,
        "thinking": adapt_thinking(request.thinking, model, max_tokens),
        "betas": [],
    }
    if not keep_1h_ttl:
        changes["cache_control"] = _short_ttl(request.cache_control)
        if request.cache is not None:
            changes["cache"] = dataclasses.replace(request.cache, control=_short_ttl(request.cache.control))
    return dataclasses.replace(request, **changes)


class FallbackClient:
    """A ``ModelClient`` over a chain of ``(model id, client)``; see the module docstring.

    ``on_fallback(from_model, to_model, error)`` is told of each move (for metrics and logs).
    """

    def __init__(
        self,
        chain: Sequence[tuple[str, ModelClient]],
        *,
        catalog: Catalog | None = None,
        keep_1h_ttl: bool = False,
        on_fallback: OnFallback | None = None,
    ) -> None:
        if not chain:
            raise ValueError("a fallback chain needs at least one model")
        self.chain = list(chain)
        self.catalog = catalog or default_catalog()
        self.keep_1h_ttl = keep_1h_ttl
        self.on_fallback = on_fallback

    @classmethod
    def over(cls, client: ModelClient, models: Sequence[str], **options: Any) -> FallbackClient:
        """The chain ``models``, all served by one ``client``."""
        return cls([(model, client) for model in models], **options)

    def steps(self, request: MessagesRequest) -> list[tuple[MessagesRequest, ModelClient]]:
        """The request for each model to try, in order."""
        names = [model for model, _ in self.chain]
        start = names.index(request.model) if request.model in names else -1
        first = self.chain[start][1] if start >= 0 else self.chain[0][1]
        out = [(request, first)]
        for model, client in self.chain[start + 1:]:
            info = self.catalog.get(model)
            out.append((adapt(request, info, keep_1h_ttl=self.keep_1h_ttl), client))
        return out

    def _moving(self, steps: list, index: int, error: BaseException) -> bool:
        if index + 1 >= len(steps) or not falls_back(error):
            return False
        if self.on_fallback is not None:
            self.on_fallback(steps[index][0].model, steps[index + 1][0].model, error)
        return True

    async def stream(self, request: MessagesRequest) -> AsyncIterator[StreamEvent]:
        steps = self.steps(request)
        for index, (step, client) in enumerate(steps):
            started = False
            try:
                async with closing_stream(client.stream(step)) as events:
                    async for event in events:
                        started = True
                        yield event
                return
            except Exception as exc:
                if started or not self._moving(steps, index, exc):
                    raise

    async def create(self, request: MessagesRequest) -> Response:
        steps = self.steps(request)
        for index, (step, client) in enumerate(steps):
            try:
                return await client.create(step)
            except Exception as exc:
                if not self._moving(steps, index, exc):
                    raise
        raise AssertionError("unreachable")

    async def count_tokens(self, request: MessagesRequest) -> int:
        return await self.steps(request)[0][1].count_tokens(request)

    async def aclose(self) -> None:
        seen: list[ModelClient] = []
        for _, client in self.chain:
            if any(client is s for s in seen):
                continue
            seen.append(client)
            close = getattr(client, "aclose", None)
            if close is not None:
                await close()
