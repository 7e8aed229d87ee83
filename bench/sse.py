"""The service's event streams under load: 200 runs, one SSE stream each, through a real uvicorn on
loopback, against the same events read in process.

    python bench/sse.py [--streams 200] [--rates 2000,4000,10000] [--seconds 3] [--flood 1000]

The service runs in a process of its own (one uvicorn worker, the app of ``tether serve`` with auth
on, on the same event loop and HTTP parser: uvloop and httptools, named on the first line); this
process is the client: 200 connections on raw asyncio sockets, each frame timed when its bytes
arrive. In the service process, a bench task appends synthetic ``text_delta`` events to 200 runs'
event logs (the path every run's events take) and an in-process reader per run reads them the way
a Python caller of the service would (woken by the log, like the SSE stream is). Both ends time
each event with the same monotonic clock (``perf_counter_ns`` is ``CLOCK_MONOTONIC``).

The client runs on uvloop too (``tether.cli.aio.run``), because it was part of what was measured:
``--split`` puts the tail of the added latency on the far side of the socket (kernel, scheduler,
client), and on asyncio's own loop the client used more CPU per event than on uvloop (at 10,000
events/s about 30 against 25 us on a quiet machine, 45 against 25 on a busy one), CPU it takes from
the same two cores as the service. Its timing is unchanged: when its task has the bytes.

Two phases:

1. **latency**, at each of ``--rates`` (events per second in all, round-robin over the runs, for
   ``--seconds`` each). The added latency of an event is when its frame reached the client minus
   when the in-process reader had it: the cost of HTTP, the socket and the client. At these rates
   a stream gets one event at a time, so every event is a write of its own.
2. **flood**: ``--flood`` events per run, appended as fast as the publisher can. Events per second
   = every event delivered over SSE / the wall time from the first append to the last frame
   received; per CPU-second = the same count / the service process's CPU time meanwhile (its
   publisher and in-process readers included).

Both processes share the machine's CPUs, with each other and with whatever else runs. A second
table shows, per phase and in shares of one CPU: the CPU each used and how long its event loop's
thread was ready to run but waited for a CPU (``/proc/self/schedstat``), what the machine's other
processes used, and what the hypervisor took (steal, ``/proc/stat``). The latency tail follows the
last two more than anything in the service. ``--split`` also times, in the service, when each frame
was written to the socket, and splits the added latency in two: in-process reader to socket (the
service's own queueing) and socket to client. It costs the service a little CPU (a wrapper on
``send`` that reads the frames' ids).

The last line is ``name=value`` pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

ID = re.compile(rb"id: (\d+)\n")
END = b"event: run_status"


# --- the service process ---------------------------------------------------------------------------


async def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from tether.config import Settings
    from tether.server.app import create_app
    from tether.server.eventlog import EventLog
    from tether.server.manager import new_run_id
    from tether.server.runs import RunConfig, ServiceRun
    from tether.server.service import ServiceOptions

    folder = Path(args.report).parent  # the parent's temporary folder: removed when it is done
    (folder / "tether.toml").touch()
    settings = Settings.load(path=folder / "tether.toml", environ={}, **{
        "api.api_key": "sk-bench-unused", "api.base_url": "http://127.0.0.1:9", "store.url": str(folder / "s.db")})
    rates = [float(r) for r in args.rates.split(",")]
    capacity = args.flood + int(sum(rates) * args.seconds / args.streams) + 100
    app = create_app(settings, ServiceOptions(workspaces=folder, heartbeat=60, resume=False, event_log_size=capacity))
    written: dict[str, Timings] = {}
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(_timing_writes(app, written) if args.split else app, lifespan="on", access_log=False,
                            log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    service = app.state.service
    _, token = await service.tokens.create("bench", "read", "bench")
    runs = []
    for i in range(args.streams):
        run = ServiceRun(new_run_id(), f"ses_bench{i}", RunConfig("bench"), log=EventLog(capacity))
        run.status = "running"
        service.manager.runs[run.id] = run
        runs.append(run)
    stack = f"{type(asyncio.get_running_loop()).__module__} loop, {config.http_protocol_class.__name__}"
    print(json.dumps({"port": sock.getsockname()[1], "token": token, "runs": [r.id for r in runs], "stack": stack}),
          flush=True)

    inproc = [Timings() for _ in runs]
    readers = [asyncio.create_task(_read_in_process(run, times)) for run, times in zip(runs, inproc, strict=True)]
    while len(service.streams.readers) < len(runs):
        await asyncio.sleep(0.01)
    published = [Timings() for _ in runs]
    gc.collect()
    gc.freeze()  # the service's objects so far are long-lived: keep collections short, as in a warm service
    phases = []
    for rate in rates:
        usage, begun = (*_usage(), *_machine()), time.perf_counter_ns()
        await _publish_at_rate(runs, published, rate, args.seconds)
        await asyncio.sleep(0.2)
        cpu, waited, busy, stolen = (b - a for a, b in zip(usage, (*_usage(), *_machine()), strict=True))
        phases.append({"rate": rate, "cpu": cpu, "waited": waited, "busy": busy, "stolen": stolen,
                       "seconds": args.seconds + 0.2, "span": [begun, time.perf_counter_ns()],
                       "last": [run.log.last_seq for run in runs]})
    await asyncio.sleep(0.2)
    cpu0, start = _usage()[0], time.perf_counter_ns()
    await _flood(runs, published, args.flood)
    for run in runs:
        run.set_status("completed")
    while service.streams.readers:
        await asyncio.sleep(0.001)
    cpu, served = _usage()[0] - cpu0, time.perf_counter_ns() - start
    await asyncio.gather(*readers)
    report = {"phases": phases, "flood_start": start, "flood_cpu": cpu, "flood_served_ns": served,
              "inproc": [t.pairs() for t in inproc], "published": [t.pairs() for t in published],
              "written": [written[run.id].pairs() for run in runs] if args.split else None}
    Path(args.report).write_text(json.dumps(report))
    server.should_exit = True
    await serving


class Timings:
    """(seq, nanoseconds) pairs in two arrays: no objects for the garbage collector to walk."""

    def __init__(self) -> None:
        self.seqs, self.times = array("q"), array("q")

    def add(self, seq: int, ns: int) -> None:
        self.seqs.append(seq)
        self.times.append(ns)

    def pairs(self) -> list[list[int]]:
        return [list(self.seqs), list(self.times)]


def _timing_writes(app, written: dict[str, Timings]):
    """``app``, noting when each event stream's frames were written to the socket (``--split``)."""

    async def timed(scope, receive, send):
        if scope["type"] != "http" or not scope["path"].endswith("/events"):
            return await app(scope, receive, send)
        times = written.setdefault(scope["path"].split("/")[3], Timings())

        async def send_timed(message):
            await send(message)  # uvicorn writes to the socket before this returns (unless it is full)
            if message["type"] == "http.response.body":
                now = time.perf_counter_ns()
                for seq in ID.findall(message["body"]):
                    times.add(int(seq), now)

        await app(scope, receive, send_timed)

    return timed


async def _read_in_process(run, times: Timings) -> None:
    """What a Python caller of the service sees: woken by the log (as the SSE stream is), reading its
    new frames."""
    from tether.server.eventlog import Wake

    wake = Wake()
    run.log.listen(wake)
    cursor = 0
    while run.active or cursor < run.log.last_seq:
        _, frames = run.log.after(cursor)
        if frames:
            now = time.perf_counter_ns()
            for seq in range(cursor + 1, run.log.last_seq + 1):
                times.add(seq, now)
            cursor = run.log.last_seq
            continue
        await wake.wait()
    run.log.unlisten(wake)


def _event(i: int) -> str:
    return json.dumps({"text": f"token{i} ", "type": "text_delta"}, separators=(",", ":"))


async def _publish_at_rate(runs, published, rate: float, seconds: float) -> None:
    """``rate`` events a second, round-robin over the runs, in small bursts (a tick of 1 ms)."""
    i, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        while i < rate * elapsed:
            k = i % len(runs)
            published[k].add(runs[k].log.append("text_delta", _event(i)), time.perf_counter_ns())
            i += 1
        await asyncio.sleep(0.001)


async def _flood(runs, published, per_run: int) -> None:
    batch = 10
    for start in range(0, per_run, batch):
        for k, run in enumerate(runs):
            for i in range(start, min(start + batch, per_run)):
                published[k].add(run.log.append("text_delta", _event(i)), time.perf_counter_ns())
        await asyncio.sleep(0)


def _usage() -> tuple[float, float]:
    """Seconds of CPU this process used, and seconds its main thread (the event loop's) was ready to
    run but waited for a CPU (0 where there is no ``/proc/self/schedstat``)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    try:
        waited = int(Path("/proc/self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        waited = 0.0
    return usage.ru_utime + usage.ru_stime, waited


def _machine() -> tuple[float, float]:
    """CPU-seconds all CPUs have been busy, and CPU-seconds the hypervisor took (0, 0 without ``/proc/stat``)."""
    try:
        ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0, 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / hz, steal / hz


# --- the client (this process) ---------------------------------------------------------------------


async def client(port: int, token: str, runs: list[str]) -> tuple[list[Timings], list[tuple[int, float, float]]]:
    """Every stream's frames, and ``_usage()`` every 20 ms (with the time)."""
    gc.freeze()
    usage: list[tuple[int, float, float]] = []
    sampler = asyncio.create_task(_sample_usage(usage))
    received = await asyncio.gather(*(_stream(port, token, run) for run in runs))
    sampler.cancel()
    return received, usage


async def _sample_usage(usage: list[tuple[int, float, float]]) -> None:
    while True:
        usage.append((time.perf_counter_ns(), *_usage()))
        await asyncio.sleep(0.02)


async def _stream(port: int, token: str, run_id: str) -> Timings:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /v1/runs/{run_id}/events HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n"
                 .encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    received = Timings()
    tail = b""
    while True:
        data = await reader.read(1 << 18)
        now = time.perf_counter_ns()
        if not data:
            break
        buffer = tail + data
        cut = buffer.rfind(b"\n\n") + 2
        whole, tail = buffer[:cut], buffer[cut:]
        for seq in ID.findall(whole):
            received.add(int(seq), now)
        if END in whole and b'"status":"completed"' in whole:
            break
    writer.close()
    return received


# --- figures ---------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def shares(usage: list[tuple[int, float, float]], start: int, end: int) -> tuple[float, float]:
    """The client's CPU used and time waited for a CPU from ``start`` to ``end`` (ns), each over that
    time, from the samples around them."""
    times = [t for t, _, _ in usage]
    a, b = max(0, bisect.bisect_right(times, start) - 1), min(len(usage) - 1, bisect.bisect_left(times, end))
    seconds = max(1e-9, (usage[b][0] - usage[a][0]) / 1e9)
    return (usage[b][1] - usage[a][1]) / seconds, (usage[b][2] - usage[a][2]) / seconds


def figures(report: dict, received: list[Timings],
            usage: list[tuple[int, float, float]]) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Per latency phase: percentiles and both processes' CPU; for the flood: events per second."""
    phases = report["phases"]
    split = report["written"] is not None
    names = ["added", "inproc", "sse", *(["service", "socket"] if split else [])]
    samples: list[dict[str, list[float]]] = [{name: [] for name in names} for _ in phases]
    flood_events = flood_delivered = last_receipt = 0
    for k, (published, inproc, got) in enumerate(zip(report["published"], report["inproc"], received, strict=True)):
        at_pub, at_inproc = dict(zip(*published, strict=True)), dict(zip(*inproc, strict=True))
        at_written = dict(zip(*report["written"][k], strict=True)) if split else {}
        bounds = [phase["last"][k] for phase in phases]
        flood_events += sum(1 for seq in published[0] if seq > bounds[-1])
        for seq, t in zip(got.seqs, got.times, strict=True):
            if seq not in at_pub:
                continue  # the closing run_status
            if seq > bounds[-1]:
                flood_delivered += 1
                last_receipt = max(last_receipt, t)
            elif seq in at_inproc:
                phase = samples[next(i for i, bound in enumerate(bounds) if seq <= bound)]
                phase["added"].append((t - at_inproc[seq]) / 1e6)
                phase["inproc"].append((at_inproc[seq] - at_pub[seq]) / 1e6)
                phase["sse"].append((t - at_pub[seq]) / 1e6)
                if split:
                    phase["service"].append((at_written[seq] - at_inproc[seq]) / 1e6)
                    phase["socket"].append((t - at_written[seq]) / 1e6)
    latency = []
    for phase, sample in zip(phases, samples, strict=True):
        row = {"rate": phase["rate"], "events": len(sample["added"]), "cpu_share": phase["cpu"] / phase["seconds"],
               "waited_share": phase["waited"] / phase["seconds"],
               "us_per_event": phase["cpu"] / max(1, len(sample["added"])) * 1e6}
        row["client_cpu_share"], row["client_waited_share"] = shares(usage, *phase["span"])
        row["others_share"] = max(0.0, phase["busy"] / phase["seconds"] - row["cpu_share"] - row["client_cpu_share"])
        row["stolen_share"] = phase["stolen"] / phase["seconds"]
        for name, values in sample.items():
            row[f"{name}_p50"], row[f"{name}_p99"] = statistics.median(values), percentile(values, 0.99)
        row["added_max"] = max(sample["added"])
        latency.append(row)
    wall = (last_receipt - report["flood_start"]) / 1e9
    flood = {"events": flood_events, "delivered": flood_delivered, "seconds": wall,
             "events_per_s": flood_delivered / wall, "events_per_cpu_s": flood_delivered / report["flood_cpu"],
             "cpu_share": report["flood_cpu"] / (report["flood_served_ns"] / 1e9),
             "client_cpu_share": shares(usage, report["flood_start"], last_receipt)[0]}
    return latency, flood


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, default=200)
    p.add_argument("--rates", default="2000,4000,10000", help="events per second in all, one latency phase each")
    p.add_argument("--seconds", type=float, default=3.0, help="length of each latency phase")
    p.add_argument("--flood", type=int, default=1000, help="events per run in the flood phase")
    p.add_argument("--split", action="store_true",
                   help="also time when the service wrote each frame: added latency = service + socket and client")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--report", help=argparse.SUPPRESS)
    args = p.parse_args()
    from tether.cli.aio import run  # uvloop if installed, as `tether serve`

    if args.serve:
        run(serve(args))
        return
    load = os.getloadavg()[0]
    folder = tempfile.TemporaryDirectory(prefix="tether-bench-sse-")
    report_path = Path(folder.name) / "report.json"
    profile = ["-m", "cProfile", "-o", os.environ["SSE_PROFILE"]] if os.environ.get("SSE_PROFILE") else []
    command = [sys.executable, *profile, __file__, "--serve", "--report", str(report_path), "--streams", str(args.streams),
               "--rates", args.rates, "--seconds", str(args.seconds), "--flood", str(args.flood),
               *(["--split"] if args.split else [])]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        hello = json.loads(server.stdout.readline())
        received, usage = run(client(hello["port"], hello["token"], hello["runs"]))
        server.wait(120)
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(10)
    with folder:
        latency, flood = figures(json.loads(report_path.read_text()), received, usage)
    print(f"{args.streams} SSE streams through uvicorn (one worker; {hello['stack']}) on loopback, vs the same events "
          f"read in process (load average before: {load:.2f} on {os.cpu_count()} CPUs)")
    split = f" {'service | socket+client p50/p99 ms':>35}" if args.split else ""
    print(f"{'events/s':>9} {'events':>7} {'in-process p50/p99 ms':>22} {'over SSE p50/p99 ms':>20} "
          f"{'added p50/p99/max ms':>22}{split} {'service CPU':>12}")
    for row in latency:
        split = (f"  {row['service_p50']:6.3f} /{row['service_p99']:6.3f} | {row['socket_p50']:6.3f} /"
                 f"{row['socket_p99']:6.3f}" if args.split else "")
        print(f"{row['rate']:9.0f} {row['events']:7d} {row['inproc_p50']:10.3f} /{row['inproc_p99']:8.3f}  "
              f"{row['sse_p50']:8.3f} /{row['sse_p99']:8.3f}  {row['added_p50']:6.3f} /{row['added_p99']:6.3f} /"
              f"{row['added_max']:7.3f}{split}  {row['cpu_share']:4.0%} {row['us_per_event']:4.0f} us/ev")
    print(f"{'events/s':>9}  CPU, shares of one: {'service, waited':>17} {'client, waited':>15} "
          f"{'other processes':>16} {'stolen by the hypervisor':>25}")
    for row in latency:
        print(f"{row['rate']:9.0f} {row['cpu_share']:26.0%}, {row['waited_share']:4.0%} {row['client_cpu_share']:9.0%}, "
              f"{row['client_waited_share']:4.0%} {row['others_share']:16.0%} {row['stolen_share']:25.1%}")
    print(f"flood: {flood['delivered']}/{flood['events']} events delivered in {flood['seconds']:.2f} s: "
          f"{flood['events_per_s']:.0f} events/s, {flood['events_per_cpu_s']:.0f} per service CPU-second "
          f"(service CPU busy {flood['cpu_share']:.0%}, client {flood['client_cpu_share']:.0%})")
    pairs = {f"added_p99_ms_at_{row['rate']:.0f}": row["added_p99"] for row in latency}
    pairs |= {f"added_p50_ms_at_{row['rate']:.0f}": row["added_p50"] for row in latency}
    pairs |= {f"{name}_at_{row['rate']:.0f}": row[f"{key}_share"] for row in latency for name, key in (
        ("service_cpu", "cpu"), ("client_cpu", "client_cpu"), ("others_cpu", "others"), ("stolen", "stolen"))}
    pairs |= {"events_per_s": flood["events_per_s"], "events_per_cpu_s": flood["events_per_cpu_s"]}
    print(" ".join(f"{k}={v:.4g}" for k, v in pairs.items()) + f" streams={args.streams} load={load:.2f}")


if __name__ == "__main__":
    main()
