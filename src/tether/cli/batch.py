"""``tether batch tasks.jsonl --concurrency N --out results.jsonl``: one run per line, resumable.

The logic is ``tether.fleet.batch``; this module parses options, opens the store, the client and
the fleet, and shows progress: a live rich panel on a terminal, plain lines otherwise (one per
finished line, and a status line every ``--status-every`` seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from tether.api.client import ModelClient
from tether.cli import aio
from tether.cli.sessions import open_sessions
from tether.config import Settings
from tether.errors import UserError
from tether.fleet.batch import BatchLine, BatchProgress, ResultsFile, read_batch, run_batch
from tether.fleet.compose import build_client
from tether.fleet.local import Fleet
from tether.fleet.ratelimit import RateLimiter
from tether.fleet.spec import RunOutcome

DEMO_TASKS = [
    "Add input validation to the ingest helpers and make the checks pass.",
    "Make every scaling helper accept an offset, and keep the old callers working.",
    "Find where items without a value are counted as zero, and skip them instead.",
    "Tidy the payload module: smaller functions, same behaviour.",
]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("batch", help="run every line of a JSON Lines file as a task; re-run to resume",
                       description="One run per line (fields of a RunSpec: task, model, tools, workspace, limits, "
                                   "queue, priority, id, ...). The whole file is checked before anything runs. "
                                   "Results are appended to --out; running the same command again skips "
                                   "finished lines and resumes interrupted ones from the session store.")
    p.add_argument("file", nargs="?", type=Path, help="the tasks, one JSON object per line (optional with --demo)")
    p.add_argument("--out", type=Path, help="results, appended as JSON lines (default: FILE.results.jsonl)")
    p.add_argument("--concurrency", "-j", type=int, default=8, help="runs at once (default 8)")
    p.add_argument("--weight", action="append", default=[], metavar="QUEUE=W",
                   help="a queue's share of the runs (repeatable; queues default to 1)")
    p.add_argument("--model", help="model for lines that name none")
    p.add_argument("--tools", help="comma-separated tool sets for lines that name none")
    p.add_argument("--max-turns", type=int, help="turn limit for lines that set none")
    p.add_argument("--budget", type=float, help="dollar limit per run, for lines that set none")
    p.add_argument("--workspaces", type=Path,
                   help="give each line without a workspace its own directory here, kept for resumes "
                        "(default: a fresh temporary directory per run)")
    p.add_argument("--resume-attempts", type=int, default=2,
                   help="resume a run that still ends in a transient API error after the client's retries, "
                        "up to N times (default 2)")
    p.add_argument("--name", help="the batch's name, from which session ids derive (default: the file's path)")
    p.add_argument("--status-every", type=float, default=10.0, help="seconds between status lines when not a TTY")
    p.add_argument("--config", type=Path, help="a tether.toml to read")
    p.add_argument("--demo", action="store_true",
                   help="run against tether's built-in fake API with a simulated coding agent (no API key)")
    p.add_argument("--demo-tasks", type=int, default=12, help="with --demo and no FILE: how many tasks to make")
    p.add_argument("--demo-turns", type=int, default=6, help="how many turns the simulated agent takes")
    return p


def command(args: argparse.Namespace) -> int:
    with _demo(args) as endpoint:
        settings = Settings.load(path=args.config, **(endpoint or {}))
        lines = read_batch(args.file, defaults=_defaults(args), key=args.name, workspaces=args.workspaces)
        out = args.out or args.file.with_name(args.file.name.removesuffix(".jsonl") + ".results.jsonl")
        args.weights = weights(args.weight)
        if args.concurrency < 1:
            raise UserError("--concurrency must be at least 1")
        return aio.run(_main(args, settings, lines, out))


def _defaults(args: argparse.Namespace) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    if args.model:
        defaults["model"] = args.model
    if args.tools:
        defaults["tools"] = args.tools
    limits = {"max_turns": args.max_turns, "max_dollars": args.budget}
    if any(v is not None for v in limits.values()):
        defaults["limits"] = {k: v for k, v in limits.items() if v is not None}
    return defaults


def weights(specs: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in specs:
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            out[name.strip()] = 0.0
        if not name.strip() or not out[name.strip()] > 0:
            raise UserError(f"--weight wants QUEUE=NUMBER with a number above 0, not {item!r}")
    return out


def client_for(settings: Settings) -> ModelClient:
    """One client for every run: retries with backoff above a rate limiter that learns the
    account's limits from the response headers (``tether.fleet.compose``)."""
    return build_client(settings, limiter=RateLimiter(key="batch"))


async def _main(args: argparse.Namespace, settings: Settings, lines: list[BatchLine], out: Path) -> int:
    client = client_for(settings)
    results = ResultsFile(out)
    try:
        await asyncio.to_thread(results.open)
    except BaseException:
        await _aclose(client)
        raise
    progress = BatchProgress()
    console = Console(highlight=False)
    _stop_on_sigterm()
    try:
        async with open_sessions(settings) as sessions, _display(console, progress, args) as on_result:
            async with Fleet(client, sessions, settings, concurrency=args.concurrency,
                             weights=args.weights, resume_attempts=args.resume_attempts) as fleet:
                await run_batch(lines, results, fleet, progress=progress, on_result=on_result)
    except asyncio.CancelledError:
        print(f"interrupted: {progress.finished}/{progress.total} finished; run the same command again to resume")
        return 130
    finally:
        results.close()
        await _aclose(client)
    print(_summary(progress, out))
    return 0 if progress.failed == 0 else 1


def _stop_on_sigterm() -> None:
    """SIGTERM stops the batch the way Ctrl-C does: runs cancelled, sessions left resumable."""
    task = asyncio.current_task()
    if task is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def _aclose(client: ModelClient) -> None:
    close = getattr(client, "aclose", None)
    if close is not None:
        await close()


@contextlib.asynccontextmanager
async def _display(console: Console, progress: BatchProgress, args: argparse.Namespace) -> AsyncIterator[Any]:
    """A live panel on a terminal; plain lines otherwise. Yields the per-result callback."""
    if console.is_terminal:
        with Live(_panel(progress), console=console, refresh_per_second=4, transient=False) as live:
            def refresh() -> None:
                live.update(_panel(progress))

            ticker = asyncio.create_task(_every(0.25, refresh))
            try:
                yield lambda line, outcome: _failed_line(console, line, outcome)
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
                refresh()
        return
    ticker = asyncio.create_task(_every(args.status_every, lambda: print(_status(progress), flush=True)))
    try:
        yield lambda line, outcome: print(_result_line(progress, line, outcome), flush=True)
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker


async def _every(seconds: float, action) -> None:
    while True:
        await asyncio.sleep(seconds)
        action()


def _failed_line(console: Console, line: BatchLine, outcome: RunOutcome) -> None:
    if not outcome.ok:
        console.print(Text(f"✗ line {line.number} ({line.id}): {outcome.outcome}: {outcome.error or ''}"[:300],
                           style="red"))


def _result_line(progress: BatchProgress, line: BatchLine, outcome: RunOutcome) -> str:
    head = f"[{progress.finished}/{progress.total}] line {line.number} id={line.id} {outcome.outcome}"
    tail = f" turns={outcome.turns} ${outcome.dollars:.4f}"
    return head + tail + (f" error={json.dumps((outcome.error or '')[:200])}" if not outcome.ok else "")


def _status(progress: BatchProgress) -> str:
    return (f"status: done {progress.done + progress.skipped}/{progress.total} failed {progress.failed} "
            f"running {progress.running} queued {progress.queued} tokens in {_n(_prompt(progress))} "
            f"out {_n(progress.output_tokens)} cache hits {progress.cache_hit_share:.0%} "
            f"${progress.dollars:.2f} eta {_eta(progress)}")


def _panel(progress: BatchProgress) -> Group:
    table = Table.grid(padding=(0, 2))
    for _ in range(6):
        table.add_column()
    table.add_row(
        Text(f"done {progress.done + progress.skipped}/{progress.total}", style="bold green"),
        Text(f"failed {progress.failed}", style="bold red" if progress.failed else "dim"),
        Text(f"running {progress.running}", style="cyan"),
        Text(f"queued {progress.queued}", style="dim"),
        Text(f"${progress.dollars:.2f}", style="bold"),
        Text(f"ETA {_eta(progress)}"),
    )
    table.add_row(
        Text(f"tokens in {_n(_prompt(progress))}"), Text(f"out {_n(progress.output_tokens)}"),
        Text(f"cache hits {progress.cache_hit_share:.0%}"),
        Text(f"skipped {progress.skipped}", style="dim"), Text(f"resumed {progress.resumed}", style="dim"),
        Text(f"elapsed {_clock(time.monotonic() - progress.started)}", style="dim"),
    )
    bar = ProgressBar(total=max(progress.total, 1), completed=progress.finished, width=60)
    return Group(bar, table)


def _summary(progress: BatchProgress, out: Path) -> str:
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(progress.outcomes.items())) or "nothing new"
    return (f"{progress.finished}/{progress.total} finished ({outcomes}; {progress.skipped} already done, "
            f"{progress.resumed} resumed) · ${progress.dollars:.4f} · cache hits {progress.cache_hit_share:.0%} "
            f"· {_clock(time.monotonic() - progress.started)} · results in {out}")


def _prompt(progress: BatchProgress) -> int:
    return progress.input_tokens + progress.cache_read_tokens + progress.cache_write_tokens


def _eta(progress: BatchProgress) -> str:
    eta = progress.eta()
    return "—" if eta is None else _clock(eta)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def _n(count: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


@contextlib.contextmanager
def _demo(args: argparse.Namespace) -> Iterator[dict[str, str] | None]:
    """With --demo, the fake API's coding agent on loopback (and, without FILE, a file of demo tasks)."""
    if not args.demo:
        if args.file is None:
            raise UserError("give a tasks file (or --demo to try it on the built-in fake API)")
        yield None
        return
    from tether.testing import CodingAgent, FakeAPI, SystemClock  # only the demo reaches into tether.testing

    args.tools = args.tools or "bash,editor"
    if args.file is None:
        folder = Path(tempfile.mkdtemp(prefix="tether-batch-demo-"))
        args.file = folder / "tasks.jsonl"
        args.file.write_text("".join(
            json.dumps({"id": f"task-{i + 1}", "task": DEMO_TASKS[i % len(DEMO_TASKS)],
                        "queue": "team-a" if i % 3 else "team-b"}) + "\n"
            for i in range(args.demo_tasks)))
    with FakeAPI(behaviour=CodingAgent(turns=args.demo_turns), clock=SystemClock()) as fake:
        fake.set_latency(0.3, 0.002)
        yield {"api.base_url": fake.base_url, "api.api_key": "demo-key"}
