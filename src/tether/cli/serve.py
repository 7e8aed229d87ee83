"""``tether serve``: the HTTP service, after checking the configuration it is given.

The checks are ``tether.checks.problems(settings, service=True)`` (an API key, a reachable store,
in prod auth on and debug off) plus one of the service's own: only the dev profile may turn auth
off. Any problem refuses to start, with the list of what to change (exit 2).

The service runs on uvloop (a dependency everywhere but Windows), and uvicorn parses HTTP with
httptools (its ``http="auto"`` picks it). uvicorn would pick uvloop too if it made the event loop;
here ``tether.cli.aio.run`` makes it, since the service's ``serve`` is a coroutine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tether.checks import problems
from tether.cli import aio
from tether.config import Settings


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("serve", help="serve the HTTP API and the web page",
                       description="Serve runs, sessions, event streams, metrics and the web page over HTTP. "
                                   "Make a token first: tether tokens create --name NAME --scopes read,run "
                                   "--tenant TEAM.")
    p.add_argument("--host", help="address to listen on (default: server.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: server.port, 8600)")
    p.add_argument("--profile", choices=["dev", "staging", "prod"])
    p.add_argument("--config", type=Path, help="a tether.toml to read")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--demo", action="store_true",
                   help="no API key needed: the model is tether's fake API with a simulated coding agent, "
                        "and a token for the page is made and printed")
    return p


async def startup_problems(settings: Settings) -> list[str]:
    found = await problems(settings, service=True)
    if not settings.server.auth and settings.profile != "dev":
        found.append(f"the {settings.profile} profile refuses to serve without auth: set server.auth = true "
                     "(only the dev profile may turn it off)")
    return found


def command(args: argparse.Namespace) -> int:
    if not args.demo:
        return _serve(args, {})
    from tether.testing import CodingAgent, FakeAPI, SystemClock  # only the demo reaches into tether.testing

    with FakeAPI(behaviour=CodingAgent(turns=8), clock=SystemClock()) as fake:
        return _serve(args, {"api.base_url": fake.base_url, "api.api_key": "demo-key"})


async def _demo_token(settings: Settings) -> str:
    from tether.server.tokens import TokenStore
    from tether.store.sql import open_store

    store = await open_store(settings.store.url)
    try:
        _, text = await TokenStore(store.engine).create("demo", "read,run,admin", "demo")
    finally:
        await store.close()
    return text


def _serve(args: argparse.Namespace, extra: dict[str, str]) -> int:
    from tether.server.runner import configure_logging, serve

    settings = Settings.load(path=args.config, profile=args.profile,
                             **{"server.host": args.host, "server.port": args.port, **extra})
    found = asyncio.run(startup_problems(settings))
    if found:
        print(f"tether serve: the configuration (profile {settings.profile}) has problems; change these first:",
              file=sys.stderr)
        for problem in found:
            print(f"  ✗ {problem}", file=sys.stderr)
        return 2
    if args.demo:
        token = asyncio.run(_demo_token(settings))
        print(f"demo: open http://{settings.server.host}:{settings.server.port}/ and sign in with this token "
              f"(shown once):\n  {token}", flush=True)
    configure_logging(settings, args.log_level)
    aio.run(serve(settings))
    return 0
