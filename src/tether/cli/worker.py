"""``tether worker`` and ``tether enqueue``: the distributed fleet from the command line.

    tether worker --db postgresql://tether@db/tether --concurrency 8
    tether enqueue tasks.jsonl --db postgresql://tether@db/tether       # prints one run id a line
    tether enqueue "fix the tests" --tools bash,editor --wait --db …    # waits, prints the outcome

The distributed backend is an extra (``pip install 'tether[distributed]'``): it is imported only when
one of these commands runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from tether.cli import aio
from tether.config import Settings
from tether.errors import ConfigError, UserError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser("worker", help="run a worker of the distributed fleet (DBOS on PostgreSQL)")
    _db_options(worker)
    worker.add_argument("--store", help="the session store URL (default: the --db database)")
    worker.add_argument("--concurrency", type=int, help="runs at once on each worker (a setting of the queue; "
                        "given, it replaces the stored one)")
    worker.add_argument("--executor-id", help="this worker's id (default: HOST-PID); a stable id lets a restarted "
                      "worker take back its own runs at once")
    worker.add_argument("--heartbeat", type=float, default=2.0, help="seconds between heartbeats (default 2)")
    worker.add_argument("--dead-after", type=float, default=15.0,
                        help="a worker silent this many seconds is dead and its runs are recovered (default 15)")
    worker.add_argument("--drain", type=float, default=30.0,
                        help="on SIGTERM, seconds to let running runs finish before stopping them (default 30)")
    worker.add_argument("--poll", type=float, default=0.5, help="seconds between looks at the queue (default 0.5)")
    worker.add_argument("--redis", help="share rate-limit buckets and budgets with the other workers in this Redis "
                        "(redis://HOST:6379/0); without it each worker paces itself and there are no budgets")
    worker.add_argument("--redis-prefix", default="tether:", help="the Redis key prefix (default tether:)")
    worker.add_argument("--budget-limit", action="append", default=[], metavar="SCOPE=DOLLARS",
                        help="set a shared budget at start (needs --redis): fleet=100, queue:acme=20, 'run:*=2'")
    worker.add_argument("--model", help="the default model for runs that name none")
    worker.add_argument("--log-level", default="WARNING", help="DBOS's log level (default WARNING)")

    enqueue = sub.add_parser("enqueue", help="queue runs for the distributed fleet's workers")
    enqueue.add_argument("tasks", help="a JSON Lines file of runs (one RunSpec a line, as for `tether batch`), "
                         "or the text of one task")
    _db_options(enqueue)
    enqueue.add_argument("--model")
    enqueue.add_argument("--tools", help="comma-separated tool sets for runs that name none")
    enqueue.add_argument("--system", help="system prompt for runs that name none")
    enqueue.add_argument("--queue", help="queue (tenant) for runs that name none")
    enqueue.add_argument("--priority", type=int, help="priority for runs that name none (higher first)")
    enqueue.add_argument("--max-turns", type=int)
    enqueue.add_argument("--budget", type=float, help="dollars per run")
    enqueue.add_argument("--tag", action="append", default=[], help="tag the sessions (repeatable)")
    enqueue.add_argument("--wait", action="store_true", help="wait for the runs and print their outcomes as JSON")


def _db_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="the fleet's PostgreSQL database (default: the store URL of the settings, "
                   "TETHER_STORE_URL)")
    p.add_argument("--config", type=Path, help="a tether.toml to read")


def command(args: argparse.Namespace) -> int:
    settings = Settings.load(path=args.config, model=args.model)
    url = args.db or settings.store.url
    if not url or not url.startswith(("postgresql", "postgres")):
        raise UserError("the distributed fleet needs a PostgreSQL database: give --db postgresql://USER@HOST/DB "
                        "(or set TETHER_STORE_URL)")
    if args.command == "worker":
        return aio.run(_worker(args, url, settings))
    return aio.run(_enqueue(args, url))


async def _worker(args: argparse.Namespace, url: str, settings: Settings) -> int:
    distributed = _distributed()
    try:
        options = distributed.WorkerOptions(
            executor_id=args.executor_id, concurrency=args.concurrency, heartbeat=args.heartbeat,
            dead_after=args.dead_after, drain=args.drain, poll=args.poll, log_level=args.log_level.upper())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.budget_limit and not args.redis:
        raise UserError("--budget-limit needs --redis: budgets are shared through Redis")
    shared = distributed.SharedState(args.redis, args.redis_prefix, _limits(args.budget_limit))
    return await distributed.serve_worker(url, settings=settings, options=options, store_url=args.store,
                                          shared=shared)


def _limits(items: list[str]) -> dict[str, float]:
    limits = {}
    for item in items:
        scope, sep, dollars = item.partition("=")
        try:
            limits[scope.strip()] = float(dollars)
        except ValueError:
            sep = ""
        if not sep or not scope.strip():
            raise UserError(f"--budget-limit takes SCOPE=DOLLARS (fleet=100, queue:acme=20), not {item!r}")
    return limits


async def _enqueue(args: argparse.Namespace, url: str) -> int:
    distributed = _distributed()
    runs = _runs(args)
    async with await distributed.DistributedFleet.open(url) as fleet:
        ids = [await fleet.enqueue(spec, run_id=run_id) for run_id, spec in runs]
        if not args.wait:
            for run_id in ids:
                print(run_id)
            return 0
        ok = True
        for run_id in ids:
            outcome = await fleet.result(run_id)
            ok = ok and outcome.ok
            print(json.dumps({"run_id": run_id, **outcome.to_dict()}, ensure_ascii=False), flush=True)
    return 0 if ok else 1


def _runs(args: argparse.Namespace) -> list[tuple[str | None, Any]]:
    """(run id, spec) for each run to queue. A file's runs get ids from the file's path and each line's
    id, so queueing the same file again queues nothing new."""
    from tether.fleet.batch import read_batch
    from tether.fleet.spec import RunSpec

    defaults = {name: value for name, value in {
        "model": args.model, "tools": args.tools, "system": args.system, "queue": args.queue,
        "priority": args.priority, "tags": args.tag or None,
        "limits": {k: v for k, v in {"max_turns": args.max_turns, "max_dollars": args.budget}.items()
                   if v is not None} or None,
    }.items() if value is not None}
    path = Path(args.tasks)
    if not path.is_file():
        return [(None, RunSpec.from_dict({**defaults, "task": args.tasks}, where="the task"))]
    key = str(path.resolve())
    return [(_run_id(key, line.id), line.spec) for line in read_batch(path, defaults=defaults, key=key)]


def _run_id(key: str, line_id: str) -> str:
    return "run_" + hashlib.sha256(f"{key}\0{line_id}".encode()).hexdigest()[:24]


def _distributed():
    try:
        from tether.fleet import distributed
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the distributed fleet needs an extra: pip install 'tether[distributed]' ({exc})") from None
    return distributed

