"""The fake Messages API as an ASGI application (raw ASGI: it is the hot path of every test).

Per ``POST /v1/messages``: auth → version → betas → body (400s) → model (404) → cache markers →
token count → cache lookup → rate limit (429) → faults → behaviour → answer (the cache plan
commits as the answer begins) → the output estimate is settled. Every answer, errors included,
carries ``request-id``, ``anthropic-organization-id`` and the rate-limit headers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from tether.api.catalog import Catalog, ModelInfo, default_catalog
from tether.api.tokens import count_request
from tether.testing.fake import delivery, models_api, render
from tether.testing.fake.behaviour import Behaviour, as_reply
from tether.testing.fake.cache import CacheModel, CachePlan
from tether.testing.fake.errors import APIFailure, invalid, not_found
from tether.testing.fake.exchange import Closing, Exchange, Receive, Scope, Send
from tether.testing.fake.faults import ErrorResponse, Fault, Reset, SlowFirstToken, TokenDelay
from tether.testing.fake.gate import Caller, api_key, identify
from tether.testing.fake.output import Composer
from tether.testing.fake.render import Pieces
from tether.testing.fake.state import Latency, RecordedRequest, Registry
from tether.testing.fake.turns import Turn
from tether.testing.fake.validate import check_count, check_create, check_for_model, context_window
from tether.testing.fake.wire import Ids, Signer, error_body

log = logging.getLogger("tether.testing.fake")
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_STACKED_FAULTS = 16
LIMITED = {"requests": "requests", "input_tokens": "input tokens", "output_tokens": "output tokens"}


@dataclass(frozen=True, slots=True)
class FakeSettings:
    seed: int | None = None  # ids and stream chunking; None: fresh every run, so ids never repeat
    organization_id: str = "4a3f8c1e-6b2d-4f0a-9e57-1c8d2b7a6f30"
    accepted_keys: frozenset[str] | None = None  # None: any non-empty key
    extra_betas: frozenset[str] = frozenset()  # accepted on top of the SDK's beta literal
    max_body_bytes: int = MAX_BODY_BYTES
    verify_signatures: bool = True
    pieces: Pieces = field(default_factory=Pieces)


class FakeApp:
    def __init__(
        self, registry: Registry, settings: FakeSettings | None = None, catalog: Catalog | None = None
    ) -> None:
        self.registry = registry
        self.settings = settings or FakeSettings()
        self.catalog = catalog or default_catalog()
        self.models = {name: info for info in self.catalog for name in (info.id, *info.aliases)}
        self.cache = CacheModel(registry.clock)
        self.ids = Ids(self.settings.seed)
        self.signer = Signer()
        self.composer = Composer(self.ids, self.signer)
        self.rng = random.Random(self.settings.seed)
        self.closing = Closing()  # set by the runner on shutdown: pauses end early

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        if scope["type"] != "http":
            return
        ex = Exchange(scope, receive, send, self.ids.request(), self.settings.organization_id, self.closing)
        record = ex.record = self._record(ex)
        try:
            record.body = await ex.read_body(self.settings.max_body_bytes)
            await self._route(ex, record.body)
        except APIFailure as failure:
            await self._fail(ex, record.key, failure)
        except Exception:
            log.exception("the fake Messages API failed on %s %s", ex.method, ex.path)
            await self._fail(ex, record.key, APIFailure(500, "Internal server error"))

    def _record(self, ex: Exchange) -> RecordedRequest:
        query = ex.scope.get("query_string", b"").decode("latin-1")
        now = self.registry.clock.now()
        record = RecordedRequest(
            ex.method, ex.path, query, ex.header_list, b"", api_key(ex.headers), ex.request_id, now
        )
        self.registry.records.append(record)
        return record

    async def _fail(self, ex: Exchange, key: str, failure: APIFailure) -> None:
        if ex.started:
            return
        if not ex.extra_headers:
            ex.extra_headers = self.registry.limiter(key).headers(key, ex.model)
        ex.extra_headers.update(failure.headers)
        await ex.json(failure.status, error_body(failure.error_type, failure.message, ex.request_id))

    async def _route(self, ex: Exchange, body: bytes) -> None:
        method, path = ex.method, ex.path.rstrip("/")
        if method == "POST" and path == "/v1/messages":
            await self._messages(ex, body)
        elif method == "POST" and path == "/v1/messages/count_tokens":
            await self._count_tokens(ex, body)
        elif method == "GET" and path == "/v1/models":
            caller = self._identify(ex)
            ex.extra_headers = self.registry.limiter(caller.key).headers(caller.key, ex.model)
            await ex.json(200, models_api.list_page(self.catalog, ex.query()))
        elif method == "GET" and path.startswith("/v1/models/"):
            caller = self._identify(ex)
            ex.extra_headers = self.registry.limiter(caller.key).headers(caller.key, ex.model)
            await ex.json(200, models_api.retrieve(self.catalog, path.removeprefix("/v1/models/")))
        else:
            raise not_found("Not Found")

    def _identify(self, ex: Exchange) -> Caller:
        return identify(ex.headers, self.settings.accepted_keys, self.settings.extra_betas)

    def _model(self, ex: Exchange, name: str) -> ModelInfo:
        ex.model = name
        info = self.models.get(name)
        if info is None or info.status == "retired":
            raise not_found(f"model: {name}")
        ex.model = info.id
        return info

    def _parse(self, body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError as exc:
            raise invalid(f"Request body is not valid JSON: {exc}") from None

    async def _count_tokens(self, ex: Exchange, body: bytes) -> None:
        caller = self._identify(ex)
        signer = self.signer if self.settings.verify_signatures else None
        request = check_count(self._parse(body), caller, signer)
        info = self._model(ex, request["model"])
        check_for_model(request, info, caller)
        if (error := self.cache.validate(request)) is not None:
            raise invalid(error)
        ex.extra_headers = self.registry.limiter(caller.key).headers(caller.key, info.id)
        await ex.json(200, {"input_tokens": count_request(request)})

    async def _messages(self, ex: Exchange, body: bytes) -> None:
        caller = self._identify(ex)
        signer = self.signer if self.settings.verify_signatures else None
        request = check_create(self._parse(body), caller, signer)
        info = self._model(ex, request["model"])
        check_for_model(request, info, caller)
        # A 400 if the cache markers are bad; the plan's usage adds up to count_request(request).
        plan = self.cache.lookup(caller.key, request, info)
        usage = plan.usage
        prompt = usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
        window = context_window(info, caller)
        if prompt > window:
            raise invalid(f"prompt is too long: {prompt} tokens > {window} maximum")
        limiter = self.registry.limiter(caller.key)
        admission = limiter.admit(
            caller.key, info.id, usage.input_tokens + usage.cache_creation_input_tokens, request["max_tokens"]
        )
        ex.extra_headers = dict(admission.headers)
        if not admission.allowed:
            limit = dataclasses.asdict(limiter.limits_for(info.id))
            raise APIFailure(
                429, _rate_limit_message(admission.limited_by, limit, self.settings.organization_id)
            )
        produced = 0
        try:
            produced = await self._answer(ex, caller, request, info, plan, window - prompt)
        finally:
            admission.settle(produced)

    async def _answer(
        self,
        ex: Exchange,
        caller: Caller,
        request: dict[str, Any],
        info: ModelInfo,
        plan: CachePlan,
        room: int,
    ) -> int:
        """Answer with the behaviour's turn (or its fault); return the output tokens produced."""
        scheduled = self.registry.fault_schedule(caller.key).next()
        if isinstance(scheduled, ErrorResponse | Reset):
            await _refuse(ex, scheduled)
            return 0
        behaviour = self.registry.behaviour(caller.key)
        reply, stacked = _next_reply(behaviour, request, [scheduled] if scheduled else [])
        if not isinstance(reply, Turn):
            await _refuse(ex, reply)
            return 0
        latency, cut = _apply(self.registry.latency(caller.key), stacked)
        max_tokens = request["max_tokens"]
        reason = "model_context_window_exceeded" if room < max_tokens else "max_tokens"
        output = self.composer.compose(reply, request, min(max_tokens, room), reason)
        shell: dict[str, Any] = {
            "id": self.ids.message(),
            "type": "message",
            "role": "assistant",
            "model": info.id,
        }
        if "diagnostics" in request:
            shell["diagnostics"] = {"cache_miss_reason": plan.miss_reason} if plan.miss_reason else None
        cache = plan.usage.usage_dict()
        if request.get("stream"):
            events = render.events(shell, output, cache, self.rng, self.settings.pieces)
            await delivery.stream(ex, events, plan.commit, cut, latency)
        else:
            body = render.message(shell, output, cache)
            await delivery.message(ex, body, plan.commit, cut, latency, output.output_tokens)
        return output.output_tokens


def _next_reply(
    behaviour: Behaviour, request: dict[str, Any], stacked: list[Fault]
) -> tuple[Any, list[Fault]]:
    """Ask the behaviour until it gives a turn or a refusal; stream faults on the way stack up."""
    for _ in range(MAX_STACKED_FAULTS):
        try:
            reply = as_reply(behaviour(request))
        except Exception as exc:
            log.exception("the fake model's behaviour failed")
            raise APIFailure(500, f"the fake model's behaviour raised {exc!r}") from exc
        if isinstance(reply, Turn | ErrorResponse | Reset):
            return reply, stacked
        stacked.append(reply)
    raise APIFailure(500, "the fake model's behaviour gave only stream faults, never a turn")


def _apply(latency: Latency, faults: list[Fault]) -> tuple[Latency, delivery.Cut | None]:
    cut: delivery.Cut | None = None
    for fault in faults:
        if isinstance(fault, SlowFirstToken):
            latency = dataclasses.replace(latency, first_token=fault.seconds)
        elif isinstance(fault, TokenDelay):
            latency = dataclasses.replace(latency, per_token=fault.seconds_per_token)
        elif not isinstance(fault, ErrorResponse | Reset):
            cut = fault
    return latency, cut


async def _refuse(ex: Exchange, fault: ErrorResponse | Reset) -> None:
    if isinstance(fault, Reset):
        ex.mark(0)  # nothing is answered
        await ex.reset()
        return
    headers = {}
    if fault.retry_after is not None:
        headers["retry-after"] = f"{fault.retry_after:g}"
    if fault.should_retry is not None:
        headers["x-should-retry"] = "true" if fault.should_retry else "false"
    raise APIFailure(fault.status, fault.message, error_type=fault.error_type, headers=headers)


def _rate_limit_message(limited_by: str | None, limits: dict[str, int], organization: str) -> str:
    what = LIMITED.get(limited_by or "requests", "requests")
    amount = limits.get(f"{(limited_by or 'requests')}_per_minute", 0)
    return (
        f"This request would exceed the rate limit for your organization ({organization}) of {amount:,} {what} "
        "per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response "
        "headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later."
    )


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
