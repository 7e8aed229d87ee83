"""Many concurrent runs against a slow model: throughput, event-loop lag, memory per run.

``--runs`` runs (1,000) start at once, each a recorded session of the fake API's simulated coding
agent with the ``editor`` tools, against a model that waits ``--delay`` seconds (2) before every
turn: ideally ``runs / delay`` model calls per second (500). The fake API runs in ``--fakes``
processes of its own (``tether fake-api --first-token-delay 2``); the runs are split over
``--processes`` worker processes, each one ``Fleet`` with its own SQLite store (or, with
``--store-kind memory``, a dict: the same runs without the database's cost).

Reported: model calls per second as a share of the ideal, over the whole bench (from the start of
the runs to the end of the last: start-up and drain included) and sustained (each run's calls per
second from its first model call to its last, summed over the runs: the rate while the runs are all
under way, still with every wait the fleet adds between one call and the next); the start-up (when
the last run's first call left: its first answer, less the model's wait); where a turn's time
goes beyond the model's wait (from the fleet's events: journaling the answer, running the tools and
journaling their results, sending the next call and reading its answer); event-loop lag (a
ticker in each worker that sleeps 10 ms and records how late it wakes) p50, p99 and max; memory per
run (each worker's peak RSS during the runs, less its RSS just before they started, summed and
divided by the runs); the clients' CPU per model call, with the kernel's share of it; and the
ceiling that CPU sets on the whole bench (no run's last call can leave before the runs' last-but-one
answers, due after ``turns - 1`` waits, are all worked through: one turn's CPU spread over the
cores). Run:
``python bench/concurrency.py``; the last line is ``name=value`` pairs. The runs' workspaces and the
stores are made in the temporary directory (``TMPDIR``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from tether import AnthropicClient, Settings
from tether.agent import events as ev
from tether.cli import aio
from tether.config import OutputSettings
from tether.fleet.local import Fleet
from tether.fleet.spec import RunSpec
from tether.sessions import Sessions
from tether.store.sql import open_store
from tether.testing.process import fake_api_process as fake_api

TICK = 0.010
# The steps of a turn, as the fleet's events show them: the model's answer has ended, the answer is
# journaled (the turn's end), the tools have run and their results are journaled.
STEPS = {ev.UsageReport: "answered", ev.TurnEnd: "journaled", ev.ToolResult: "tools_done"}
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


async def ticker(lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + TICK
        await asyncio.sleep(TICK)
        lags.append(max(0.0, loop.time() - due))


async def sampler(peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss())
        await asyncio.sleep(0.1)


async def worker(args: argparse.Namespace) -> dict:
    if args.store_kind == "memory":
        from _memory_store import MemoryStore

        store = MemoryStore()
    else:
        store = await open_store(args.store)
    client = AnthropicClient(api_key="bench-key", base_url=args.base_url, max_retries=0, timeout=120)
    settings = Settings(output=OutputSettings(max_tokens=4096))
    calls: dict[object, list[float]] = {}  # each run's model calls, when they ended
    last: dict[object, tuple[str, float]] = {}  # each run's latest step, and when
    steps: Counter[str] = Counter()  # the seconds between one step and the next, summed over the runs
    counts: Counter[str] = Counter()
    ended = [0.0]  # when the last run ended (the clock is the machine's: the parent reads it too)

    def observe(handle, event) -> None:
        now = time.monotonic()
        if isinstance(event, ev.UsageReport):
            calls.setdefault(handle, []).append(now)
        elif isinstance(event, ev.RunEnd):
            ended[0] = max(ended[0], now)
        step = STEPS.get(type(event))
        if step is not None:
            if handle in last and last[handle][0] != step:
                pair = f"{last[handle][0]}>{step}"
                steps[pair], counts[pair] = steps[pair] + now - last[handle][1], counts[pair] + 1
            last[handle] = (step, now)

    specs = [RunSpec(f"task {i}", tools=["editor"], limits={"max_turns": 100}) for i in range(args.runs)]
    baseline = rss()
    print("ready", flush=True)
    sys.stdin.readline()  # the parent's "go", to every worker at once
    lags: list[float] = []
    peak = [baseline]
    stop = asyncio.Event()
    probes = [asyncio.create_task(ticker(lags, stop)), asyncio.create_task(sampler(peak, stop))]
    before = os.times()
    async with Fleet(client, Sessions(store), settings, concurrency=args.runs, observe=observe) as fleet:
        outcomes = await fleet.map(specs)
    after = os.times()
    cpu = [after.user - before.user, after.system - before.system]
    stop.set()
    await asyncio.gather(*probes)
    await client.aclose()
    await store.close()
    paces = [(len(times) - 1) / (times[-1] - times[0]) for times in calls.values() if len(times) > 1]
    firsts = [times[0] for times in calls.values()]
    return {"calls": sum(map(len, calls.values())), "ended": ended[0], "lags": lags, "baseline": baseline,
            "first_answers": [min(firsts), max(firsts)],
            "peak": peak[0], "outcomes": Counter(o.outcome for o in outcomes), "pace": sum(paces), "cpu": cpu,
            "steps": {k: steps[k] / counts[k] for k in steps}}


def spawn(args: argparse.Namespace, runs: int, base_url: str, store: Path) -> subprocess.Popen:
    command = [sys.executable, __file__, "--worker", "--runs", str(runs), "--base-url", base_url,
               "--store", str(store), "--store-kind", args.store_kind]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def cpu_seconds(pid: int) -> float:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def main(args: argparse.Namespace) -> None:
    load = os.getloadavg()[0]
    fake_args = ["--behaviour", "coding-agent", "--turns", str(args.turns), "--first-token-delay", str(args.delay)]
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="tether-bench-") as folder:
        urls = [stack.enter_context(fake_api(*fake_args)) for _ in range(args.fakes)]
        shares = [args.runs // args.processes + (i < args.runs % args.processes) for i in range(args.processes)]
        workers = [spawn(args, n, urls[i % len(urls)], Path(folder) / f"w{i}.db") for i, n in enumerate(shares)]
        for w in workers:
            assert w.stdout is not None and w.stdout.readline().strip() == "ready", "a worker did not start"
        fake_pids = _fake_pids()
        fake_cpu = sum(cpu_seconds(p) for p in fake_pids)
        started = time.monotonic()
        for w in workers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        reports = [json.loads(w.communicate()[0].strip().splitlines()[-1]) for w in workers]
        exited = time.monotonic() - started
        fake_cpu = sum(cpu_seconds(p) for p in fake_pids) - fake_cpu
    firsts = [min(r["first_answers"][0] for r in reports) - started,
              max(r["first_answers"][1] for r in reports) - started]
    report(args, reports, max(r["ended"] for r in reports) - started, exited, fake_cpu, load, firsts)


def _fake_pids() -> list[int]:
    """The fake API processes (children of this one running ``fake-api``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                if b"fake-api" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
    return pids


def report(args: argparse.Namespace, reports: list[dict], wall: float, exited: float, fake_cpu: float,
           load: float, firsts: list[float]) -> None:
    calls = sum(r["calls"] for r in reports)
    ideal = args.runs / args.delay
    expected = args.runs * args.turns
    rate = calls / wall
    pace = sum(r["pace"] for r in reports)
    lags = sorted(lag for r in reports for lag in r["lags"])
    p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] * 1000 if lags else 0.0  # noqa: E731
    per_run = sum(r["peak"] - r["baseline"] for r in reports) / args.runs
    outcomes = sum((Counter(r["outcomes"]) for r in reports), Counter())
    user, kernel = (sum(r["cpu"][i] for r in reports) for i in (0, 1))
    client_cpu = user + kernel
    print(f"{args.runs} runs x {args.turns} turns, model delay {args.delay}s, {args.processes} worker process(es), "
          f"{args.fakes} fake API process(es), {args.store_kind} store, {os.cpu_count()} CPUs, "
          f"load average before {load:.1f}")
    print(f"outcomes: {dict(outcomes)}; model calls {calls} of {expected} expected")
    print(f"wall {wall:.2f}s to the last run's end (ideal {args.turns * args.delay:.2f}s; the workers had exited "
          f"{exited - wall:.2f}s later); {rate:.1f} calls/s of {ideal:.0f} ideal = {rate / ideal:.1%}")
    print(f"sustained: {pace:.1f} calls/s = {pace / ideal:.1%} of ideal (each run's calls per second from its "
          f"first model call to its last, summed over the runs)")
    start_up, beyond = firsts[1] - args.delay, max(wall - args.turns * args.delay, 1e-9)
    print(f"start-up: the runs' first answers came {firsts[0]:.2f}s to {firsts[1]:.2f}s after the start: "
          f"the last run's first call left {start_up:.2f}s in, {start_up / beyond:.0%} of the whole bench's "
          f"time beyond the ideal")
    steps = {k: statistics.mean(r["steps"][k] for r in reports if k in r["steps"]) * 1000
             for k in {k for r in reports for k in r["steps"]}}
    steps["tools_done>answered"] = steps.get("tools_done>answered", args.delay * 1000) - args.delay * 1000
    overhead = sum(steps.get(k, 0.0) for k in ("answered>journaled", "journaled>tools_done", "tools_done>answered"))
    print(f"a turn's time beyond the model's wait (mean): journaling the answer "
          f"{steps.get('answered>journaled', 0):.1f} ms, then running the tools and journaling their results "
          f"{steps.get('journaled>tools_done', 0):.1f} ms, then sending the next call and reading its answer "
          f"{steps['tools_done>answered']:.1f} ms: {overhead:.1f} ms in all")
    print(f"event-loop lag p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {p(1.0):.1f} ms "
          f"({len(lags)} ticks of {TICK * 1000:.0f} ms)")
    print(f"memory: {per_run / 1024:.1f} KiB per run (peak RSS over baseline); worker baselines "
          f"{statistics.mean(r['baseline'] for r in reports) / 2**20:.0f} MiB each")
    print(f"CPU: clients {client_cpu:.1f}s ({client_cpu / max(calls, 1) * 1000:.2f} ms per call; "
          f"{kernel / max(client_cpu, 1e-9):.0%} of it in the kernel), "
          f"fake API {fake_cpu:.1f}s ({fake_cpu / max(calls, 1) * 1000:.2f} ms per call)")
    # The ceiling of the docstring, with the average turn's CPU for the last-but-one turn's.
    turn_cpu = (client_cpu + fake_cpu) / args.turns / (os.cpu_count() or 1)
    ceiling = args.turns * args.delay / (args.turns * args.delay + turn_cpu)
    print(f"one turn of every run takes {turn_cpu:.2f}s of the {os.cpu_count()} cores: at this CPU the whole "
          f"bench can reach about {ceiling:.1%} of the ideal at most")
    figures = {
        "runs": args.runs, "processes": args.processes, "store": args.store_kind, "calls": calls,
        "calls_per_s": f"{rate:.1f}", "share_of_ideal": f"{rate / ideal:.3f}", "sustained_share": f"{pace / ideal:.3f}",
        "cpu_ceiling_share": f"{ceiling:.3f}", "start_up_s": f"{start_up:.2f}",
        "turn_overhead_ms": f"{overhead:.1f}", "lag_p99_ms": f"{p(0.99):.1f}", "lag_max_ms": f"{p(1.0):.1f}",
        "kib_per_run": f"{per_run / 1024:.1f}", "failed": sum(v for k, v in outcomes.items() if k != "completed"),
        "client_ms_cpu_per_call": f"{client_cpu / max(calls, 1) * 1000:.2f}",
        "client_kernel_share": f"{kernel / max(client_cpu, 1e-9):.2f}",
    }
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=5, help="turns of the simulated coding agent per run")
    parser.add_argument("--delay", type=float, default=2.0, help="the model's wait before each turn (seconds)")
    parser.add_argument("--processes", type=int, default=3, help="worker processes running the fleets")
    parser.add_argument("--fakes", type=int, default=1, help="fake API processes")
    parser.add_argument("--store-kind", choices=["sqlite", "memory"], default="sqlite",
                        help="sqlite (the default store, a file per worker) or memory (a dict: no database cost)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        print(json.dumps(aio.run(worker(options))), flush=True)
    else:
        main(options)
