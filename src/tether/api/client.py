"""The seam to the Messages API: the ``ModelClient`` protocol and its implementation on the SDK.

``AnthropicClient`` uses the official ``anthropic`` SDK for everything the SDK is good at
(credentials, headers, connection pooling, its retries) and reads the streamed body itself with
``StreamReader``, which costs less than the SDK's per-event objects.

Cancellation: cancelling the task that iterates ``stream()`` closes the HTTP response; nothing
keeps running in the background.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Protocol

import anthropic
import httpx2

from tether.api.caching import render
from tether.api.stream import StreamEvent, StreamReader
from tether.api.types import MessagesRequest, Response
from tether.errors import APIConnectionError, APIStatusError, MissingCredentialsError

POOL_SIZE = 32  # connections per connection pool


class ModelClient(Protocol):
    """What the loop needs from the Messages API. Wrappers (limits, retries, fallback) implement it too."""

    def stream(self, request: MessagesRequest) -> AsyncIterator[StreamEvent]:
        """Stream the response as typed events; the last one is ``MessageComplete``."""
        ...

    async def create(self, request: MessagesRequest) -> Response: ...

    async def count_tokens(self, request: MessagesRequest) -> int: ...


class AnthropicClient:
    """``ModelClient`` over HTTP with the ``anthropic`` SDK, keeping up to ``connections`` open."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        auth_token: str | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
        timeout: float = 600.0,
        default_headers: Mapping[str, str] | None = None,
        connections: int = 1000,
    ) -> None:
        if not api_key and not auth_token:
            raise MissingCredentialsError(
                "no Anthropic API key: set the ANTHROPIC_API_KEY environment variable, "
                "or put api_key under [api] in tether.toml"
            )
        # Connections stay open between calls (the SDK keeps only 100: a fleet of more runs would open
        # a new one for most calls), spread over pools of POOL_SIZE, added as calls need them:
        # httpcore looks at every connection of a pool on each request, which costs more than the
        # call itself at a thousand connections.
        self._sdk_args: dict[str, Any] = dict(
            api_key=api_key, auth_token=auth_token if not api_key else None, base_url=base_url,
            max_retries=max_retries, timeout=timeout, default_headers=default_headers)
        self._most_pools = max(1, -(-connections // POOL_SIZE))
        self._tls = httpx2.create_ssl_context()  # one for all pools: making one costs ~50 ms
        self._pools: list[anthropic.AsyncAnthropic] = []
        self._busy: list[int] = []  # calls in flight per pool
        self._add_pool()

    def _add_pool(self) -> None:
        limits = httpx2.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
        http = anthropic.DefaultAsyncHttpxClient(limits=limits, verify=self._tls)
        self._pools.append(anthropic.AsyncAnthropic(**self._sdk_args, http_client=http))
        self._busy.append(0)

    @property
    def base_url(self) -> str:
        return str(self._pools[0].base_url)

    @contextlib.contextmanager
    def _sdk(self) -> Iterator[anthropic.AsyncAnthropic]:
        """The SDK client of the pool with the fewest calls in flight, for one call."""
        pool = self._busy.index(min(self._busy))
        if self._busy[pool] >= POOL_SIZE and len(self._pools) < self._most_pools:
            self._add_pool()
            pool = len(self._pools) - 1
        self._busy[pool] += 1
        try:
            yield self._pools[pool]
        finally:
            self._busy[pool] -= 1

    async def stream(self, request: MessagesRequest) -> AsyncIterator[StreamEvent]:
        body, options = _call(request)
        with self._sdk() as sdk, _errors():
            async with sdk.messages.with_streaming_response.create(**body, stream=True, **options) as raw:
                http = raw.http_response
                reader = StreamReader(request_id=http.headers.get("request-id"), headers=http.headers)
                async for chunk in http.aiter_bytes():  # to the end: a body read whole keeps its connection
                    for event in reader.feed(chunk):
                        yield event
                reader.check_complete()

    async def create(self, request: MessagesRequest) -> Response:
        body, options = _call(request)
        with self._sdk() as sdk, _errors():
            raw = await sdk.messages.with_raw_response.create(**body, **options)
        http = raw.http_response
        return Response.from_wire(json.loads(http.content), request_id=http.headers.get("request-id"),
                                  headers=http.headers)

    async def count_tokens(self, request: MessagesRequest) -> int:
        body, options = _call(request, counting=True)
        with self._sdk() as sdk, _errors():
            result = await sdk.messages.count_tokens(**body, **options)
        return result.input_tokens

    async def aclose(self) -> None:
        for sdk in self._pools:
            await sdk.close()


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """The SDK's errors as tether's."""
    try:
        yield
    except anthropic.APIStatusError as exc:
        raise _status_error(exc) from None
    except (anthropic.APIConnectionError, httpx2.TransportError) as exc:
        raise APIConnectionError(f"connection to the Messages API failed: {exc}") from None


_SDK_ARGS = {"model", "max_tokens", "messages"}
_COUNT_ARGS = {"model", "messages"}


def _call(request: MessagesRequest, *, counting: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a request into the SDK's keyword arguments and ``extra_*`` options."""
    body = request.count_body() if counting else render(request)
    named = _COUNT_ARGS if counting else _SDK_ARGS
    args = {k: body.pop(k) for k in named}
    options: dict[str, Any] = {"extra_body": body} if body else {}
    if request.betas:
        options["extra_headers"] = {"anthropic-beta": ",".join(request.betas)}
    return args, options


def _status_error(exc: anthropic.APIStatusError) -> APIStatusError:
    body = exc.body if isinstance(exc.body, Mapping) else {}
    error = body.get("error") if isinstance(body.get("error"), Mapping) else body
    headers = exc.response.headers
    retry_after = headers.get("retry-after")
    should_retry = headers.get("x-should-retry")
    return APIStatusError(
        f"{exc.status_code} {error.get('type', 'error')}: {error.get('message', exc.message)}",
        status_code=exc.status_code,
        error_type=error.get("type") or "api_error",
        request_id=headers.get("request-id"),
        retry_after=float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None,
        should_retry=None if should_retry is None else should_retry == "true",
    )
