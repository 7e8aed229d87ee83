"""The service's metrics, in process, rendered in Prometheus' text format for ``GET /metrics``.

Counters are fed by the events of every run (turns, tokens by kind, dollars, tool latencies) and
by ``MeteredClient`` under the fleet's wrappers (every HTTP attempt to the Messages API, its
latency and its 429s); gauges are read when scraped (runs by status, the fleet's queue, circuit
breakers, open event streams). Small enough not to need ``prometheus_client``.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tether.agent import events as ev
from tether.api.client import ModelClient
from tether.api.stream import StreamEvent
from tether.api.types import MessagesRequest, Response
from tether.errors import APIConnectionError, APIStatusError
from tether.fleet.local import FleetStats

TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
CIRCUIT = {"closed": 0, "half_open": 1, "open": 2}


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    series: dict[tuple[tuple[str, str], ...], list[float]] = field(default_factory=dict)

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        row = self.series.get(key)
        if row is None:
            row = self.series[key] = [0.0] * (len(self.buckets) + 2)  # buckets, +Inf, sum
        row[bisect.bisect_left(self.buckets, value)] += 1
        row[-1] += value

    def lines(self, name: str) -> Iterable[str]:
        for key, row in sorted(self.series.items()):
            running = 0.0
            for bound, count in zip((*self.buckets, "+Inf"), row[:-1], strict=True):
                running += count
                yield f"{name}_bucket{_labels(dict(key), le=str(bound))} {running:g}"
            yield f"{name}_sum{_labels(dict(key))} {row[-1]:.6f}"
            yield f"{name}_count{_labels(dict(key))} {running:g}"


class Metrics:
    def __init__(self) -> None:
        self.turns = 0
        self.tokens: Counter[str] = Counter()
        self.dollars = 0.0
        self.tool_seconds = Histogram(TOOL_BUCKETS)
        self.tool_errors: Counter[str] = Counter()
        self.model_calls: Counter[str] = Counter()
        self.model_call_seconds = Histogram(CALL_BUCKETS)
        self.runs_settled: Counter[str] = Counter()

    def observe(self, event: ev.Event) -> None:
        if isinstance(event, ev.UsageReport):
            u = event.usage
            self.turns += 1
            self.tokens["input"] += u.input_tokens
            self.tokens["output"] += u.output_tokens
            self.tokens["cache_read"] += u.cache_read_input_tokens
            self.tokens["cache_write"] += u.cache_creation_input_tokens
            self.dollars += event.dollars
        elif isinstance(event, ev.ToolResult):
            self.tool_seconds.observe(event.seconds, tool=event.name)
            if event.is_error:
                self.tool_errors[event.name] += 1

    def model_call(self, result: str, seconds: float) -> None:
        self.model_calls[result] += 1
        self.model_call_seconds.observe(seconds, result=result)

    @property
    def cache_hit_share(self) -> float:
        prompt = self.tokens["input"] + self.tokens["cache_read"] + self.tokens["cache_write"]
        return self.tokens["cache_read"] / prompt if prompt else 0.0

    def render(self, *, runs: Mapping[str, int], fleet: FleetStats, circuits: Mapping[str, str],
               streams: int, budgets: Iterable[Mapping[str, Any]] = ()) -> str:
        """``budgets``: the month's rows of the tenants the caller may see (as ``/v1/usage`` shows them)."""
        out: list[str] = []

        def metric(name: str, kind: str, text: str, samples: Iterable[str]) -> None:
            out.extend([f"# HELP {name} {text}", f"# TYPE {name} {kind}", *samples])

        metric("tether_runs", "gauge", "Service runs held in memory, by status.",
               (f"tether_runs{_labels({'status': s})} {n}" for s, n in sorted(runs.items())))
        metric("tether_runs_settled_total", "counter", "Executions of service runs that ended, by where the run rests.",
               (f"tether_runs_settled_total{_labels({'status': s})} {n}" for s, n in sorted(self.runs_settled.items())))
        metric("tether_fleet_executions", "gauge", "Executions in the fleet, queued or running.",
               [f'tether_fleet_executions{{state="queued"}} {fleet.queued}',
                f'tether_fleet_executions{{state="running"}} {fleet.running}'])
        metric("tether_fleet_finished_total", "counter", "Executions the fleet finished, by outcome.",
               (f"tether_fleet_finished_total{_labels({'outcome': o})} {n}" for o, n in sorted(fleet.finished.items())))
        metric("tether_turns_total", "counter", "Model calls made by runs.", [f"tether_turns_total {self.turns}"])
        metric("tether_tokens_total", "counter", "Tokens by kind: input, output, cache_read, cache_write.",
               (f"tether_tokens_total{_labels({'kind': k})} {self.tokens[k]}"
                for k in ("input", "output", "cache_read", "cache_write")))
        metric("tether_cache_hit_ratio", "gauge", "Share of prompt tokens read from the cache.",
               [f"tether_cache_hit_ratio {self.cache_hit_share:.6f}"])
        metric("tether_dollars_total", "counter", "Dollars spent by runs.", [f"tether_dollars_total {self.dollars:.6f}"])
        metric("tether_tool_call_seconds", "histogram", "Tool call latency, by tool.",
               self.tool_seconds.lines("tether_tool_call_seconds"))
        metric("tether_tool_errors_total", "counter", "Tool calls that returned an error, by tool.",
               (f"tether_tool_errors_total{_labels({'tool': t})} {n}" for t, n in sorted(self.tool_errors.items())))
        metric("tether_model_calls_total", "counter", "HTTP attempts to the Messages API, by result.",
               (f"tether_model_calls_total{_labels({'result': r})} {n}" for r, n in sorted(self.model_calls.items())))
        metric("tether_rate_limited_total", "counter", "Messages API answers with status 429.",
               [f"tether_rate_limited_total {self.model_calls['rate_limited']}"])
        metric("tether_model_call_seconds", "histogram", "Messages API attempt latency (whole stream), by result.",
               self.model_call_seconds.lines("tether_model_call_seconds"))
        metric("tether_circuit_state", "gauge", "Circuit breakers: 0 closed, 1 half open, 2 open.",
               (f"tether_circuit_state{_labels({'circuit': c})} {CIRCUIT.get(s, 2)}" for c, s in sorted(circuits.items())))
        metric("tether_event_streams", "gauge", "Open event streams.", [f"tether_event_streams {streams}"])
        budgets = list(budgets)
        metric("tether_budget_limit_dollars", "gauge", "Each tenant's budget for the month (UTC), if it has one.",
               (f"tether_budget_limit_dollars{_labels({'tenant': b['tenant']})} {b['limit']:.6f}"
                for b in budgets if b["limit"] is not None))
        metric("tether_budget_spent_dollars", "gauge", "What each tenant has spent this month (UTC).",
               (f"tether_budget_spent_dollars{_labels({'tenant': b['tenant']})} {b['spent']:.6f}" for b in budgets))
        return "\n".join(out) + "\n"


def _labels(labels: Mapping[str, str], **more: str) -> str:
    items = {**labels, **more}
    if not items:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in items.items())
    return "{" + body + "}"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class MeteredClient:
    """A ``ModelClient`` that counts each call to ``inner`` (one HTTP attempt: put it at the bottom)."""

    def __init__(self, inner: ModelClient, metrics: Metrics) -> None:
        self.inner, self.metrics = inner, metrics

    @property
    def base_url(self) -> str | None:
        return getattr(self.inner, "base_url", None)

    async def stream(self, request: MessagesRequest) -> AsyncIterator[StreamEvent]:
        started, result = time.monotonic(), "abandoned"
        try:
            async for event in self.inner.stream(request):
                yield event
            result = "ok"
        except (APIStatusError, APIConnectionError) as exc:
            result = _result(exc)
            raise
        finally:
            self.metrics.model_call(result, time.monotonic() - started)

    async def create(self, request: MessagesRequest) -> Response:
        started, result = time.monotonic(), "abandoned"
        try:
            response = await self.inner.create(request)
            result = "ok"
            return response
        except (APIStatusError, APIConnectionError) as exc:
            result = _result(exc)
            raise
        finally:
            self.metrics.model_call(result, time.monotonic() - started)

    async def count_tokens(self, request: MessagesRequest) -> int:
        return await self.inner.count_tokens(request)

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


def _result(exc: BaseException) -> str:
    if isinstance(exc, APIStatusError):
        return "rate_limited" if exc.status_code == 429 else "error"
    return "error"
