"""A circuit breaker per model and endpoint: stop calling a service that is down, probe it, resume.

States of one circuit (``Breakers`` holds them all, keyed ``"<model>@<endpoint>"``)::

    closed ──(threshold consecutive failures, or failure_rate over the last `window` calls)──► open
    open ──(cooldown elapsed: the next call is a probe)──► half_open
    half_open ──(probe succeeds)──► closed        half_open ──(probe fails)──► open

Only failures that say the service is down count: 529 and other 5xx, an ``event: error`` of type
``overloaded_error``/``api_error``/``timeout_error`` inside a stream, and connection errors
(refused, reset, timed out). A 4xx, a 429 included, proves the service answers: it counts as a
success. A call cancelled or abandoned before its end counts as neither.

While a circuit is open (and while its probes are out), calls fail at once with ``CircuitOpen``,
which names the model, the endpoint and when the next probe goes; ``FallbackClient`` catches it to
serve the call with the next model. ``CircuitOpen`` is not retryable: a ``RetryingClient`` above
the breaker raises it at once.

Time is read from ``clock`` only; nothing sleeps here.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from tether.api.client import ModelClient
from tether.api.stream import MessageComplete, StreamEvent
from tether.api.types import MessagesRequest, Response
from tether.errors import APIConnectionError, APIError, APIStatusError
from tether.fleet.retry import closing_stream

State = Literal["closed", "open", "half_open"]
DOWN_IN_STREAM = frozenset({"overloaded_error", "api_error", "timeout_error"})


class CircuitOpen(APIError):
    """The circuit for ``model`` at ``endpoint`` is open: the call was not sent."""

    category = "api_error"
    retryable = False

    def __init__(self, message: str, *, model: str, endpoint: str, retry_in: float) -> None:
        super().__init__(message)
        self.model = model
        self.endpoint = endpoint
        self.retry_in = retry_in


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` says the service is down (as opposed to the request being refused)."""
    if isinstance(error, CircuitOpen):
        return False
    if isinstance(error, APIConnectionError):
        return True
    if isinstance(error, APIStatusError):
        if error.status_code == 200:
            return error.error_type in DOWN_IN_STREAM
        return error.status_code >= 500
    return False


@dataclass
class _Circuit:
    state: State = "closed"
    failures: int = 0  # consecutive
    recent: deque[bool] = field(default_factory=deque)  # True: failure
    probe_at: float = 0.0
    probing: int = 0
    last_error: str = ""


def _safe(endpoint: str) -> str:
    """The endpoint without credentials or query, fit for messages and metrics."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")) or endpoint


class Breakers:
    """Every circuit of a process, with one policy.

    ``threshold`` consecutive failures open a circuit; so does a failure share of at least
    ``failure_rate`` over the last ``window`` calls (once ``window`` calls were seen), if given.
    After ``cooldown`` seconds, ``probes`` calls at a time go through to test the service.
    """

    def __init__(
        self,
        *,
        threshold: int = 5,
        cooldown: float = 30.0,
        failure_rate: float | None = None,
        window: int = 20,
        probes: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold, self.cooldown = threshold, cooldown
        self.failure_rate, self.window, self.probes = failure_rate, window, probes
        self.clock = clock
        self._circuits: dict[str, _Circuit] = {}

    @staticmethod
    def name(model: str, endpoint: str) -> str:
        return f"{model}@{_safe(endpoint)}"

    def states(self) -> dict[str, str]:
        """``{"<model>@<endpoint>": "closed" | "open" | "half_open"}``, for metrics and readiness."""
        now = self.clock()
        return {name: self._state(c, now) for name, c in self._circuits.items()}

    def _state(self, circuit: _Circuit, now: float) -> State:
        if circuit.state == "open" and now >= circuit.probe_at:
            return "half_open"
        return circuit.state

    def admit(self, model: str, endpoint: str) -> bool:
        """Let a call through (True if it is a probe), or raise ``CircuitOpen``."""
        name = self.name(model, endpoint)
        circuit = self._circuits.setdefault(name, _Circuit())
        now = self.clock()
        state = self._state(circuit, now)
        if state == "closed":
            return False
        if state == "half_open" and circuit.probing < self.probes:
            circuit.state = "half_open"
            circuit.probing += 1
            return True
        wait = max(0.0, circuit.probe_at - now)
        when = f"the next probe goes in {wait:.1f}s" if wait else "a probe is under way"
        raise CircuitOpen(
            f"the circuit for {model} at {_safe(endpoint)} is open after repeated failures "
            f"({circuit.last_error}); {when}",
            model=model, endpoint=_safe(endpoint), retry_in=wait,
        )

    def record(self, model: str, endpoint: str, *, probe: bool, error: BaseException | None) -> None:
        """The end of an admitted call: ``error`` None for a success."""
        circuit = self._circuits[self.name(model, endpoint)]
        if probe:
            circuit.probing -= 1
        failed = error is not None and is_outage(error)
        circuit.recent.append(failed)
        while len(circuit.recent) > self.window:
            circuit.recent.popleft()
        if not failed:
            circuit.failures = 0
            if probe or circuit.state == "half_open":
                circuit.state = "closed"
                circuit.recent.clear()
            return
        circuit.failures += 1
        circuit.last_error = _describe(error)  # type: ignore[arg-type]
        if circuit.state == "open" and not probe:
            return  # a call sent before the circuit opened: the cooldown already runs
        if probe or circuit.state == "half_open" or self._tripped(circuit):
            circuit.state = "open"
            circuit.probe_at = self.clock() + self.cooldown

    def release(self, model: str, endpoint: str, *, probe: bool) -> None:
        """An admitted call that ended without a verdict (cancelled, abandoned)."""
        if probe:
            self._circuits[self.name(model, endpoint)].probing -= 1

    def _tripped(self, circuit: _Circuit) -> bool:
        if circuit.failures >= self.threshold:
            return True
        if self.failure_rate is None or len(circuit.recent) < self.window:
            return False
        return sum(circuit.recent) / len(circuit.recent) >= self.failure_rate


def _describe(error: BaseException) -> str:
    if isinstance(error, APIStatusError):
        return f"last: {error.status_code} {error.error_type}"
    return f"last: {type(error).__name__}"


class CircuitBreakerClient:
    """A ``ModelClient`` that passes calls to ``inner`` through ``breakers``' circuit for the
    request's model at ``endpoint`` (default: ``inner.base_url``)."""

    def __init__(self, inner: ModelClient, breakers: Breakers, *, endpoint: str | None = None) -> None:
        self.inner, self.breakers = inner, breakers
        self.endpoint = endpoint or getattr(inner, "base_url", None) or "default"

    def states(self) -> dict[str, str]:
        return self.breakers.states()

    async def stream(self, request: MessagesRequest) -> AsyncIterator[StreamEvent]:
        model = request.model
        probe = self.breakers.admit(model, self.endpoint)
        verdict = False
        try:
            async with closing_stream(self.inner.stream(request)) as events:
                async for event in events:
                    if isinstance(event, MessageComplete):
                        verdict = True
                        self.breakers.record(model, self.endpoint, probe=probe, error=None)
                    yield event
        except (APIStatusError, APIConnectionError) as exc:
            if not verdict:
                verdict = True
                self.breakers.record(model, self.endpoint, probe=probe, error=exc)
            raise
        finally:
            if not verdict:
                self.breakers.release(model, self.endpoint, probe=probe)

    async def create(self, request: MessagesRequest) -> Response:
        model = request.model
        probe = self.breakers.admit(model, self.endpoint)
        try:
            response = await self.inner.create(request)
        except (APIStatusError, APIConnectionError) as exc:
            self.breakers.record(model, self.endpoint, probe=probe, error=exc)
            raise
        except BaseException:
            self.breakers.release(model, self.endpoint, probe=probe)
            raise
        self.breakers.record(model, self.endpoint, probe=probe, error=None)
        return response

    async def count_tokens(self, request: MessagesRequest) -> int:
        return await self.inner.count_tokens(request)

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()
