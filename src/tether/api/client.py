"""The seam to the Messages API: the ``ModelClient`` protocol and its implementation on the SDK.

``AnthropicClient`` uses the official ``anthropic`` SDK for everything the SDK is good at
(credentials, headers, connection pooling, its retries) and reads the streamed body itself with
``StreamReader``, which costs less than the SDK's per-event objects. A streamed call goes through the
SDK's generic ``post`` with the body already serialized (``render_json``: each message's JSON is
written once): ``messages.create`` would copy and re-serialize the whole conversation every turn.

Cancellation: cancelling the task that iterates ``stream()`` closes the HTTP response; nothing
keeps running in the background.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Protocol

import anthropic
import httpx2

from tether.api.caching import render, render_json
from tether.api.stream import StreamEvent, StreamReader
from tether.api.types import MessagesRequest, Response
from tether.errors import APIConnectionError, APIStatusError, MissingCredentialsError


class ModelClient(Protocol):
    """What the loop needs from the Messages API. Wrappers (limits, retries, fallback) implement it too."""

    def stream(self, request: MessagesRequest) -> AsyncIterator[StreamEvent]:
        """Stream the response as typed events; the last one is ``MessageComplete``."""
        ...

    async def create(self, request: MessagesRequest) -> Response: ...

    async def count_tokens(self, request: MessagesRequest) -> int: ...


class AnthropicClient:
    """``ModelClient`` over HTTP with the ``anthropic`` SDK, keeping up to ``connections`` open.
    Close it (``aclose()``, or ``async with``) when done: its connections are aiohttp's."""

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
        # The SDK on its aiohttp transport: its connection pool and C parser cost less per call than
        # the default (httpx on httpcore, anyio and h11), whose pool also scans every connection on
        # each request. Every connection may stay open between calls: the SDK keeps only 100, so a
        # fleet of more runs would reconnect for most calls.
        limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._sdk = anthropic.AsyncAnthropic(
            api_key=api_key, auth_token=auth_token if not api_key else None, base_url=base_url,
            max_retries=max_retries, timeout=timeout, default_headers=default_headers,
            http_client=anthropic.DefaultAioHttpClient(limits=limits))
        self._calls = (f"tether-{n}" for n in itertools.count())

    @property
    def base_url(self) -> str:
        return str(self._sdk.base_url)

    async def stream(self, request: MessagesRequest) -> AsyncIterator[StreamEvent]:
        headers = {"anthropic-beta": ",".join(request.betas)} if request.betas else {}
        # Every option given: the SDK deep-copies the sentinel of each one left out, and makes a
        # uuid4 idempotency key (which the Messages API does not take: it is not sent) when none is.
        options: anthropic.RequestOptions = {
            "headers": headers, "max_retries": self._sdk.max_retries, "timeout": self._sdk.timeout,
            "idempotency_key": next(self._calls)}
        with _errors():
            http = await self._sdk.post("/v1/messages", cast_to=httpx2.Response,
                                        content=render_json(request, stream=True), options=options, stream=True)
            try:
                headers = dict(http.headers.items())  # httpx's headers decode every header on each lookup
                reader = StreamReader(request_id=headers.get("request-id"), headers=headers)
                async for chunk in http.aiter_bytes():  # to the end: a body read whole keeps its connection
                    for event in reader.feed(chunk):
                        yield event
                reader.check_complete()
            finally:
                await http.aclose()

    async def create(self, request: MessagesRequest) -> Response:
        body, options = _call(request)
        with _errors():
            raw = await self._sdk.messages.with_raw_response.create(**body, **options)
        http = raw.http_response
        return Response.from_wire(json.loads(http.content), request_id=http.headers.get("request-id"),
                                  headers=http.headers)

    async def count_tokens(self, request: MessagesRequest) -> int:
        body, options = _call(request, counting=True)
        with _errors():
            result = await self._sdk.messages.count_tokens(**body, **options)
        return result.input_tokens

    async def aclose(self) -> None:
        await self._sdk.close()

    async def __aenter__(self) -> AnthropicClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


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
