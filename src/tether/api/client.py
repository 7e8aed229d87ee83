"""The seam to the Messages API: the ``ModelClient`` protocol and its implementation on the SDK.

``AnthropicClient`` takes from the official ``anthropic`` SDK what the SDK is the authority on: how
the key or token is sent, the base URL (``ANTHROPIC_BASE_URL`` when none is given), the headers
every request carries (``anthropic-version``, the user agent, ``default_headers``) and the
non-streamed calls (``create``, ``count_tokens``, with the SDK's retries).

A streamed call, the one every turn makes, is posted by tether itself on an ``aiohttp`` session
with those headers, its body serialized once (``render_json``: each message's JSON is written once)
and its response read by ``StreamReader``. Through the SDK's generic ``post`` a call cost ~0.6 ms
more CPU (0.87 against 0.29 ms, measured side by side: its request options, URL and header
objects, then httpx over aiohttp), about a sixth of a busy fleet's client CPU per model call. The
SDK's rules stay: a refused or failed request is retried up to ``max_retries`` times before its
body starts, on what the SDK retries, after ``retry-after`` or the SDK's backoff (``backoff``); the
environment's proxy is used; errors are tether's (``tether.errors``).

Cancellation: cancelling the task that iterates ``stream()`` closes the HTTP response; nothing
keeps running in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Protocol

import aiohttp
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


def backoff(error: BaseException, retry: int, *, base: float = 0.5, cap: float = 8.0, jitter: float = 0.25,
            max_retry_after: float = 60.0, rng: random.Random | None = None) -> float | None:
    """Seconds to wait before retry number ``retry`` (0-based) after ``error``; None: do not retry.

    What the API says may succeed later is retried (``retryable``: 408, 409, 429, 5xx, connection
    errors, or as ``x-should-retry`` says), after its ``retry-after`` (longer than ``max_retry_after``:
    not retried) or ``min(base * 2**retry, cap)`` less up to ``jitter`` of it, the SDK's formula.
    """
    if not isinstance(error, APIStatusError | APIConnectionError) or not error.retryable:
        return None
    after = getattr(error, "retry_after", None)
    if after is not None and after > 0:
        return after if after <= max_retry_after else None
    return min(base * 2**retry, cap) * (1.0 - jitter * (rng or random).random())


class AnthropicClient:
    """``ModelClient`` over HTTP, configured by the ``anthropic`` SDK, keeping up to ``connections``
    open. Close it (``aclose()``, or ``async with``) when done: its connections are aiohttp's."""

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
        # The SDK on its aiohttp transport for what it sends itself. Every connection may stay open
        # between calls: the SDK keeps only 100, so a fleet of more runs would reconnect for most calls.
        limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._sdk = anthropic.AsyncAnthropic(
            api_key=api_key, auth_token=auth_token if not api_key else None, base_url=base_url,
            max_retries=max_retries, timeout=timeout, default_headers=default_headers,
            http_client=anthropic.DefaultAioHttpClient(limits=limits))
        self.max_retries, self.connections = max_retries, connections
        self._url = str(self._sdk.base_url).rstrip("/") + "/v1/messages"
        self._headers: dict[str, str] = {}
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None  # made in the first call's event loop
        self._proxy: str | None = None

    @property
    def base_url(self) -> str:
        return str(self._sdk.base_url)

    async def stream(self, request: MessagesRequest) -> AsyncIterator[StreamEvent]:
        body = render_json(request, stream=True)
        if self._session is None:
            self._open()
        headers = {**self._headers, "anthropic-beta": ",".join(request.betas)} if request.betas else self._headers
        response = await self._post(body, headers)
        try:
            received = {k.lower(): v for k, v in response.headers.items()}
            reader = StreamReader(request_id=received.get("request-id"), headers=received)
            with _cut():
                async for chunk in response.content.iter_any():  # to the end: a body read whole keeps its connection
                    for event in reader.feed(chunk):
                        yield event
            reader.check_complete()
        finally:
            response.release()

    async def _post(self, body: bytes, headers: Mapping[str, str]) -> aiohttp.ClientResponse:
        """The response of ``POST /v1/messages`` once its status is 2xx, retried as the SDK would."""
        assert self._session is not None
        retry = 0
        while True:
            try:
                with _cut():
                    response = await self._session.post(
                        self._url, data=body, proxy=self._proxy,
                        headers={**headers, "x-stainless-retry-count": str(retry)} if retry else headers)
                    if response.status < 300:
                        return response
                    try:
                        content = await response.read()
                    finally:
                        response.release()
                error = _status_error(response.status, content, response.headers)
            except APIConnectionError as exc:
                error = exc
            delay = backoff(error, retry) if retry < self.max_retries else None
            if delay is None:
                raise error
            await asyncio.sleep(delay)
            retry += 1

    def _open(self) -> None:
        """The session and the SDK's headers, in the event loop that will use them (the SDK names it)."""
        self._headers = {k: v for k, v in self._sdk.default_headers.items() if isinstance(v, str)}
        self._headers["x-stainless-retry-count"] = "0"
        tls = httpx2.create_ssl_context() if self._url.startswith("https:") else True  # SSL_CERT_FILE, as httpx
        self._proxy = _proxy_for(self._url)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.connections, ssl=tls), timeout=self._timeout)

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
        if self._session is not None:
            await self._session.close()
        await self._sdk.close()

    async def __aenter__(self) -> AnthropicClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``NO_PROXY``, ...), read once:
    aiohttp's ``trust_env`` reads the environment and ``~/.netrc`` again for every request."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


@contextlib.contextmanager
def _cut() -> Iterator[None]:
    """aiohttp's failures (refused, reset, timed out, a body cut short) as tether's."""
    try:
        yield
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise APIConnectionError(f"connection to the Messages API failed: {type(exc).__name__}: {exc}") from None


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """The SDK's errors as tether's."""
    try:
        yield
    except anthropic.APIStatusError as exc:
        raise _status_error(exc.status_code, exc.response.content, exc.response.headers) from None
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


def _status_error(status: int, content: bytes, headers: Mapping[str, str]) -> APIStatusError:
    """The error an answer with ``status`` and body ``content`` stands for."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    body = body if isinstance(body, Mapping) else {}
    error = body.get("error") if isinstance(body.get("error"), Mapping) else body
    message = error.get("message") or content.decode("utf-8", "replace")[:500] or f"HTTP {status}"
    retry_after = headers.get("retry-after")
    should_retry = headers.get("x-should-retry")
    return APIStatusError(
        f"{status} {error.get('type', 'error')}: {message}",
        status_code=status,
        error_type=error.get("type") or "api_error",
        request_id=headers.get("request-id"),
        retry_after=float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None,
        should_retry=None if should_retry is None else should_retry == "true",
    )
