"""``tether tokens create|list|revoke``: the service tokens, in the configured session store."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tether.cli import aio
from tether.config import Settings
from tether.server.tokens import SCOPES, TokenStore
from tether.store.sql import open_store


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("tokens", help="make, list and revoke the HTTP service's tokens")
    p.add_argument("--config", type=Path, help="a tether.toml to read (its store.url is where tokens live)")
    cmds = p.add_subparsers(dest="tokens_command", required=True)
    create = cmds.add_parser("create", help="make a token and print it (once: it is stored hashed)")
    create.add_argument("--name", required=True, help="who or what uses it")
    create.add_argument("--scopes", default="read", help=f"comma-separated: {', '.join(SCOPES)} (default: read)")
    create.add_argument("--tenant", default="default", help="its runs' queue, for fair sharing and usage")
    listing = cmds.add_parser("list", help="every token (never their secrets)")
    revoke = cmds.add_parser("revoke", help="revoke a token: it stops working at its next request")
    revoke.add_argument("id")
    for command in (create, listing, revoke):  # `tether tokens create --config F` works too
        command.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return p


@contextlib.asynccontextmanager
async def open_tokens(settings: Settings) -> AsyncIterator[TokenStore]:
    store = await open_store(settings.store.url)
    try:
        yield TokenStore(store.engine)
    finally:
        await store.close()


def command(args: argparse.Namespace) -> int:
    return aio.run(_command(args, Settings.load(path=args.config)))


async def _command(args: argparse.Namespace, settings: Settings) -> int:
    console = Console(highlight=False)
    async with open_tokens(settings) as tokens:
        match args.tokens_command:
            case "create":
                token, text = await tokens.create(args.name, args.scopes, args.tenant)
                Console(stderr=True, highlight=False).print(f"token {token.id} ({token.name}; scopes {','.join(token.scopes)}; "
                              f"tenant {token.tenant}). Keep it now; it is not shown again:", style="dim")
                print(text)
            case "list":
                table = Table("id", "name", "tenant", "scopes", "created", "revoked", box=None)
                for t in await tokens.list():
                    table.add_row(t.id, t.name, t.tenant, ",".join(t.scopes), f"{t.created_at:%Y-%m-%d %H:%M}",
                                  f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "")
                console.print(table)
            case "revoke":
                token = await tokens.revoke(args.id)
                print(f"revoked {token.id} ({token.name})")
    return 0
