"""Runs under injected faults: every run ends completed or in a categorized error, no turn is lost,
no tool call runs twice.

``--runs`` runs (1,000) of the fake API's simulated coding agent (``--turns`` turns, ``editor``
tools) against a fake that fails ``--rate`` (20%) of requests with a fault drawn from every kind it
has: 429, 529, 500, a reset before the response, a reset mid-stream, an ``event: error`` mid-stream,
a stall longer than the client's read timeout, a slow first token, slow tokens. The fake runs in
this process (a thread of its own: this process does nothing else); the runs in ``--processes``
worker processes, each a ``Fleet`` over its own SQLite store, with the retry wrapper
(``RetryingClient``, ``--attempts`` calls per model call) and the fleet resuming a run that still
ends in a transient error (``--resume-attempts``).

Afterwards each worker reads its store back and checks every session: messages in order without a
gap, user and assistant alternating, every tool call answered exactly once by the next message and
claimed once in the ledger with the result the model saw; a completed run has exactly ``--turns``
assistant turns (the simulated agent's turn count comes from the conversation, so a lost or doubled
turn would show). Run: ``python bench/faults.py``; the last line is ``name=value`` pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

CATEGORIES = {"completed", "refusal", "api_error", "rate_limited", "budget_exhausted", "validation_error",
              "system_error", "not_found", "conflict"}


async def worker(args: argparse.Namespace) -> dict:
    from tether import AnthropicClient, Settings
    from tether.agent import events as ev
    from tether.config import ApiSettings, OutputSettings
    from tether.fleet.local import Fleet
    from tether.fleet.retry import RetryingClient
    from tether.fleet.spec import RunSpec
    from tether.sessions import Sessions
    from tether.store.sql import open_store

    store = await open_store(args.store)
    retries: Counter[str] = Counter()
    base = AnthropicClient(api_key="faults-key", base_url=args.base_url, max_retries=0, timeout=args.timeout)
    client = RetryingClient(base, args.attempts, base=0.05, cap=1.0,
                            on_retry=lambda n, error, delay: retries.update([type(error).__name__]))
    settings = Settings(api=ApiSettings(timeout=args.timeout), output=OutputSettings(max_tokens=4096))
    warnings: Counter[str] = Counter()

    def observe(handle, event) -> None:
        if isinstance(event, ev.Warning):
            warnings[event.code] += 1

    specs = [RunSpec(f"task {i}", tools=["editor"], id=str(i)) for i in range(args.runs)]
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    async with Fleet(client, Sessions(store), settings, concurrency=args.concurrency, observe=observe,
                     resume_attempts=args.resume_attempts) as fleet:
        outcomes = await fleet.map(specs)
    wall = time.monotonic() - started
    checks = await verify(store, outcomes, args.turns)
    await base.aclose()
    await store.close()
    return {"wall": wall, "outcomes": Counter(o.outcome for o in outcomes), "retries": retries,
            "warnings": warnings, "resumed": fleet.stats.resumed, **checks,
            "errors": Counter((o.error or "")[:80] for o in outcomes if not o.ok).most_common(5)}


async def verify(store, outcomes, turns: int) -> dict:
    """Read every session back; count what would show a lost turn or a tool call run twice."""
    problems: list[str] = []
    tool_calls = ledger_entries = unfinished = 0
    for outcome in outcomes:
        messages = await store.messages(outcome.session_id)
        ledger = await store.ledger(outcome.session_id)
        ledger_entries += len(ledger)
        where = f"{outcome.session_id} ({outcome.outcome})"
        if [m.seq for m in messages] != list(range(len(messages))):
            problems.append(f"{where}: messages out of order or with a gap")
        if [m.role for m in messages] != ["user", "assistant"] * (len(messages) // 2) + ["user"] * (len(messages) % 2):
            problems.append(f"{where}: roles do not alternate")
        if outcome.outcome == "completed" and sum(m.role == "assistant" for m in messages) != turns:
            problems.append(f"{where}: {sum(m.role == 'assistant' for m in messages)} turns, expected {turns}")
        answered: Counter[str] = Counter()
        for i, message in enumerate(messages):
            for block in message.content:
                if block["type"] == "tool_result":
                    answered[block["tool_use_id"]] += 1
                    entry = ledger.get(block["tool_use_id"])
                    if entry is None:
                        problems.append(f"{where}: tool call {block['tool_use_id']} ran without a ledger claim")
                    elif entry.status != "finished":
                        unfinished += 1
                    elif entry.result != block:
                        problems.append(f"{where}: the ledger's result differs from the model's")
            calls = [b["id"] for b in message.content if b["type"] == "tool_use"]
            tool_calls += len(calls)
            if calls and i + 1 < len(messages):
                following = [b["tool_use_id"] for b in messages[i + 1].content if b["type"] == "tool_result"]
                if following != calls:
                    problems.append(f"{where}: tool calls of message {i} not answered once each, in order")
        if any(count > 1 for count in answered.values()):
            problems.append(f"{where}: a tool call answered twice")
        if len(ledger) != len(answered) or set(ledger) - set(answered):
            problems.append(f"{where}: ledger entries without an answer")
    return {"problems": problems[:20], "problem_count": len(problems), "tool_calls": tool_calls,
            "ledger_entries": ledger_entries, "unfinished_ledger": unfinished}


def fault_kinds(timeout: float):
    from tether.testing import (
        Reset,
        ResetMidStream,
        SlowFirstToken,
        Stall,
        StreamError,
        TokenDelay,
        overloaded,
        rate_limited,
        server_error,
    )

    return [rate_limited(retry_after=0.2), overloaded(), server_error(), Reset(), ResetMidStream(after_events=3),
            StreamError(after_events=3), Stall(seconds=timeout + 2, after_events=3), SlowFirstToken(0.5),
            TokenDelay(0.001)]


def main(args: argparse.Namespace) -> None:
    from tether.testing import CodingAgent, FakeAPI, SystemClock

    kinds = fault_kinds(args.timeout)
    with FakeAPI(behaviour=CodingAgent(turns=args.turns), clock=SystemClock(), record_limit=100) as fake, \
            tempfile.TemporaryDirectory(prefix="tether-faults-") as folder:
        fake.random_faults(args.rate, seed=args.seed, kinds=kinds)
        shares = [args.runs // args.processes + (i < args.runs % args.processes) for i in range(args.processes)]
        workers = [subprocess.Popen(
            [sys.executable, __file__, "--worker", "--runs", str(n), "--base-url", fake.base_url,
             "--store", str(Path(folder) / f"w{i}.db"), "--turns", str(args.turns), "--attempts", str(args.attempts),
             "--timeout", str(args.timeout), "--resume-attempts", str(args.resume_attempts),
             "--concurrency", str(args.concurrency)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for i, n in enumerate(shares)]
        for w in workers:
            assert w.stdout is not None and w.stdout.readline().strip() == "ready", "a worker did not start"
        started = time.monotonic()
        for w in workers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        reports = [json.loads(w.communicate()[0].strip().splitlines()[-1]) for w in workers]
        wall = time.monotonic() - started
    report(args, reports, wall, kinds)


def report(args: argparse.Namespace, reports: list[dict], wall: float, kinds) -> None:
    total = lambda name: sum((Counter(r[name]) for r in reports), Counter())  # noqa: E731
    outcomes, retries, warnings = total("outcomes"), total("retries"), total("warnings")
    uncategorized = sum(v for k, v in outcomes.items() if k not in CATEGORIES)
    problems = sum(r["problem_count"] for r in reports)
    print(f"{args.runs} runs x {args.turns} turns, {args.rate:.0%} of requests faulted ({len(kinds)} kinds: "
          f"{', '.join(sorted({type(k).__name__ for k in kinds}))}), {args.processes} worker process(es), "
          f"{args.attempts} attempts per call, {args.resume_attempts} resumes per run")
    print(f"wall {wall:.1f}s; outcomes {dict(outcomes)}; uncategorized {uncategorized}")
    print(f"client retries by error: {dict(retries)}; stream restarts {warnings.get('stream_restarted', 0)}; "
          f"runs resumed by the fleet {sum(r['resumed'] for r in reports)}")
    print(f"tool calls {sum(r['tool_calls'] for r in reports)}, ledger entries "
          f"{sum(r['ledger_entries'] for r in reports)}, interrupted (claimed, never finished) "
          f"{sum(r['unfinished_ledger'] for r in reports)}; consistency problems {problems}")
    for r in reports:
        for problem in r["problems"][:5]:
            print(f"  problem: {problem}")
        for error, count in r["errors"]:
            print(f"  error x{count}: {error}")
    figures = {
        "runs": args.runs, "completed": outcomes.get("completed", 0),
        "errors": sum(v for k, v in outcomes.items() if k != "completed"), "uncategorized": uncategorized,
        "retries": sum(retries.values()), "resumed": sum(r["resumed"] for r in reports),
        "lost_turns_or_double_calls": problems, "wall_s": f"{wall:.1f}",
    }
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--rate", type=float, default=0.2, help="share of requests that meet a fault")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=250, help="runs at once per worker process")
    parser.add_argument("--attempts", type=int, default=6, help="calls per model call (RetryingClient)")
    parser.add_argument("--resume-attempts", type=int, default=3, help="fleet resumes of a run after a transient error")
    parser.add_argument("--timeout", type=float, default=3.0, help="the client's read timeout (seconds)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        print(json.dumps(asyncio.run(worker(options))), flush=True)
    else:
        main(options)
