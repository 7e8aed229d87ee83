"""Throughput under the API's rate limits: tether's fleet wrappers against the SDK's own retries.

The same 500 short tool-using runs (``tether.Agent``: the model calls ``add``, then answers; two
streamed model calls a run) go through the fake Messages API, started in its own process with
token-bucket limits on the real clock (``_fake_limited.py``), twice:

- **baseline**: ``AnthropicClient`` with the SDK's retries (2, honouring ``retry-after``), nothing else;
- **fleet**: ``tether.fleet.compose.build_client`` (retries over breaker over rate limiter), no
  limits configured: the limiter learns them from the response headers.

Each contender has its own API key, so its own buckets. Before it starts, its input-token bucket is
drained with a few large requests sent through its own client, so the measurement is of the
steady state (a full bucket would hand out a minute's worth of tokens at once) and the fleet's
limiter starts from what the headers told it, as in a long-running worker. ``--concurrency`` runs
are in progress at a time, as a fleet's scheduler would allow.

Reported per contender: achieved throughput as a share of the binding limit (tokens or requests
the API counted, over what its bucket could give in the time: the level at the start plus the
refill), 429s per 100 requests sent, and runs that failed. Run: ``python bench/rate_limits.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tether import Agent, AnthropicClient, Message, MessagesRequest, Settings, tool
from tether.agent import events as ev
from tether.api.client import ModelClient
from tether.config import ApiSettings, CacheSettings, OutputSettings
from tether.fleet.breaker import Breakers
from tether.fleet.compose import FleetOptions, build_client
from tether.fleet.ratelimit import RateLimiter

MODEL = "claude-opus-4-8"
SYSTEM = "You are a careful assistant. Use the add tool for every sum, then say done. " * 4
MAX_TOKENS = 256


@tool
def add(a: int, b: int) -> str:
    """Add two whole numbers.

    Args:
        a: the first number
        b: the second number
    """
    return str(a + b)


class Fake:
    """``_fake_limited.py`` in a subprocess, and its stats over a pipe."""

    def __init__(self, rpm: int, itpm: int, otpm: int, first_token: float) -> None:
        script = Path(__file__).with_name("_fake_limited.py")
        self.process = subprocess.Popen(
            [sys.executable, str(script), "--rpm", str(rpm), "--itpm", str(itpm), "--otpm", str(otpm),
             "--first-token", str(first_token)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("READY "):
            raise RuntimeError(f"the fake API did not start: {line!r}")
        self.base_url = line.split()[1]

    def stats(self, key: str) -> dict[int, int]:
        self.process.stdin.write(f"stats {key}\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        return {int(k): v for k, v in json.loads(self.process.stdout.readline()).items()}  # type: ignore[union-attr]

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.write("quit\n")  # type: ignore[union-attr]
            self.process.stdin.close()  # type: ignore[union-attr]
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Outcome:
    name: str
    seconds: float = 0.0
    runs: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    requests_ok: int = 0
    rate_limited: int = 0
    sent: int = 0
    start: dict[str, float] = field(default_factory=dict)  # bucket levels when the timed part began
    shares: dict[str, float] = field(default_factory=dict)

    @property
    def per_100(self) -> float:
        return 100.0 * self.rate_limited / max(self.sent, 1)

    @property
    def binding(self) -> tuple[str, float]:
        name = max(self.shares, key=lambda n: self.shares[n])
        return name, self.shares[name]


async def drain(client: ModelClient, itpm: int) -> dict[str, float]:
    """Empty the input-token bucket with large requests; return the levels the last headers gave."""
    chunk = itpm // 3 - 2_000
    levels: dict[str, float] = {}
    for n in range(12):
        prompt = f"drain {n} " + "x" * (4 * chunk)
        request = MessagesRequest(model=MODEL, max_tokens=1, messages=[Message.user(prompt)])
        response = await client.create(request)
        h = response.headers
        levels = {name: float(h[f"anthropic-ratelimit-{header}-remaining"]) for name, header in
                  (("requests", "requests"), ("input_tokens", "input-tokens"), ("output_tokens", "output-tokens"))}
        if levels["input_tokens"] < chunk:
            break
    return levels


async def run_all(client: ModelClient, settings: Settings, runs: int, concurrency: int, outcome: Outcome) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with gate:
            agent = Agent(client, system=SYSTEM, tools=[add], settings=settings)
            async for event in agent.stream(f"What is {n} plus {n + 1}?"):
                if isinstance(event, ev.RunEnd):
                    outcome.runs += 1
                    outcome.failed += event.outcome != "completed"
                    u = event.usage
                    outcome.input_tokens += u.input_tokens + u.cache_creation_input_tokens
                    outcome.output_tokens += u.output_tokens

    await asyncio.gather(*(one(n) for n in range(runs)))


async def contender(name: str, fake: Fake, args: argparse.Namespace) -> Outcome:
    key = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        model=MODEL,
        api=ApiSettings(api_key=key, base_url=fake.base_url),
        output=OutputSettings(max_tokens=MAX_TOKENS),
        cache=CacheSettings(enabled=False),
    )
    if name == "baseline":
        client: ModelClient = AnthropicClient(api_key=key, base_url=fake.base_url)  # the SDK's 2 retries
    else:
        client = build_client(settings, FleetOptions(), limiter=RateLimiter(key=key), breakers=Breakers())
    outcome = Outcome(name)
    try:
        outcome.start = await drain(client, args.itpm)
        before = fake.stats(key)
        started = time.monotonic()
        await run_all(client, settings, args.runs, args.concurrency, outcome)
        outcome.seconds = time.monotonic() - started
        after = fake.stats(key)
    finally:
        await client.aclose()  # type: ignore[attr-defined]
    delta = {status: after.get(status, 0) - before.get(status, 0) for status in after}
    outcome.sent = sum(delta.values())
    outcome.requests_ok = delta.get(200, 0)
    outcome.rate_limited = delta.get(429, 0)
    limits = {"requests": args.rpm, "input_tokens": args.itpm, "output_tokens": args.otpm}
    used = {"requests": outcome.requests_ok, "input_tokens": outcome.input_tokens,
            "output_tokens": outcome.output_tokens}
    for bucket, limit in limits.items():
        available = outcome.start[bucket] + limit / 60.0 * outcome.seconds
        outcome.shares[bucket] = used[bucket] / available
    return outcome


def report(outcomes: list[Outcome]) -> None:
    print(f"{'':10} {'seconds':>8} {'runs ok':>8} {'failed':>7} {'sent':>6} {'429s':>6} {'429/100':>8} "
          f"{'binding':>13} {'share':>6}  shares (requests / input / output)")
    for o in outcomes:
        bucket, share = o.binding
        shares = " / ".join(f"{o.shares[b]:.3f}" for b in ("requests", "input_tokens", "output_tokens"))
        print(f"{o.name:10} {o.seconds:8.1f} {o.runs - o.failed:8d} {o.failed:7d} {o.sent:6d} {o.rate_limited:6d} "
              f"{o.per_100:8.2f} {bucket:>13} {share:6.3f}  {shares}")
    pairs = []
    for o in outcomes:
        pairs += [f"{o.name}_share={o.binding[1]:.3f}", f"{o.name}_429_per_100={o.per_100:.2f}",
                  f"{o.name}_failed_runs={o.failed}", f"{o.name}_seconds={o.seconds:.1f}"]
    print(" ".join(pairs))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rpm", type=int, default=6_000)
    parser.add_argument("--itpm", type=int, default=300_000)
    parser.add_argument("--otpm", type=int, default=300_000)
    parser.add_argument("--first-token", type=float, default=0.05, help="the fake's latency, seconds")
    parser.add_argument("--only", choices=["baseline", "fleet"], help="run one contender")
    args = parser.parse_args()
    fake = Fake(args.rpm, args.itpm, args.otpm, args.first_token)
    try:
        print(f"{args.runs} runs, {args.concurrency} at a time; limits: {args.rpm} RPM, {args.itpm} ITPM, "
              f"{args.otpm} OTPM; fake at {fake.base_url}", flush=True)
        names = [args.only] if args.only else ["baseline", "fleet"]
        outcomes = [await contender(name, fake, args) for name in names]
        report(outcomes)
    finally:
        fake.close()


if __name__ == "__main__":
    asyncio.run(main())
