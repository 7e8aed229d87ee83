"""``tether sessions ...``, and the store the other commands record their runs in."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tether.cli.render import RichRenderer
from tether.config import Settings
from tether.sessions import Sessions, to_message
from tether.store.base import SessionQuery
from tether.store.sql import open_store


def add_parser(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    p = sub.add_parser("sessions", help="list, show, resume, fork, export, import and delete sessions")
    p.add_argument("--config", type=Path, help="a tether.toml to read")
    cmds = p.add_subparsers(dest="sessions_command", required=True)
    ls = cmds.add_parser("list", help="sessions, newest first")
    ls.add_argument("--search", help="text in titles or messages")
    ls.add_argument("--tag")
    ls.add_argument("--status", choices=["running", "completed", "failed", "interrupted"])
    ls.add_argument("--since", type=dt.date.fromisoformat, help="YYYY-MM-DD")
    ls.add_argument("--limit", type=int, default=50)
    for name, text in [("show", "a session's conversation"), ("delete", "delete a session")]:
        cmds.add_parser(name, help=text).add_argument("id")
    fork = cmds.add_parser("fork", help="a new session sharing a prefix of this one")
    fork.add_argument("id")
    fork.add_argument("--at", type=int, help="how many messages to keep (default: all)")
    export = cmds.add_parser("export", help="a session as lossless JSON or a Markdown transcript")
    export.add_argument("id")
    export.add_argument("--format", choices=["json", "markdown"], default="json")
    export.add_argument("--out", type=Path, help="write here instead of to standard output")
    imp = cmds.add_parser("import", help="a session exported as JSON")
    imp.add_argument("file", type=Path)
    return cmds


@contextlib.asynccontextmanager
async def open_sessions(settings: Settings) -> AsyncIterator[Sessions]:
    """The configured store (pruned by ``store.retention_days``), for as long as it is used."""
    store = await open_store(settings.store.url)
    try:
        if settings.store.retention_days is not None:
            await store.prune(dt.datetime.now(dt.UTC) - dt.timedelta(days=settings.store.retention_days))
        yield Sessions(store)
    finally:
        await store.close()


async def command(args: argparse.Namespace, settings: Settings) -> int:
    console = Console(highlight=False)
    async with open_sessions(settings) as sessions:
        match args.sessions_command:
            case "list":
                since = dt.datetime.combine(args.since, dt.time(), dt.UTC) if args.since else None
                found = await sessions.store.list(SessionQuery(text=args.search, tag=args.tag, status=args.status,
                                                               since=since, limit=args.limit))
                console.print(_table(found))
            case "show":
                info = await sessions.get(args.id)
                console.print(f"[bold]{info.title or info.id}[/] {info.id} · {info.model} · {info.status} · "
                              f"{info.turns} turns · ${info.dollars:.4f}")
                for stored in await sessions.store.messages(args.id):
                    _show(console, to_message(stored))
            case "fork":
                info = await sessions.fork(args.id, args.at)
                print(info.id)
            case "export":
                text = (await sessions.export_json(args.id) if args.format == "json"
                        else await sessions.export_markdown(args.id))
                if args.out:
                    args.out.write_text(text)
                else:
                    sys.stdout.write(text + "\n")
            case "import":
                print((await sessions.import_json(args.file.read_text())).id)
            case "delete":
                await sessions.get(args.id)
                await sessions.store.delete(args.id)
                print(f"deleted {args.id}")
    return 0


def _table(found) -> Table:
    table = Table("id", "updated", "status", "turns", "dollars", "title", "tags", box=None)
    for info in found:
        table.add_row(info.id, f"{info.updated_at:%Y-%m-%d %H:%M}", info.status, str(info.turns),
                      f"{info.dollars:.4f}", info.title[:60], ",".join(info.tags))
    return table


def _show(console: Console, message) -> None:
    from tether.agent import events as ev

    render = RichRenderer(console)
    console.print(f"[bold]{message.role}[/]")
    for block in message.content:
        match block.type:
            case "text":
                render(ev.TextDelta(block.text))
            case "thinking":
                render(ev.ThinkingDelta(block.thinking))
            case "tool_use":
                render(ev.ToolCallFinished(block.id, block.name, block.input))
            case "tool_result":
                render(ev.ToolResult(block.tool_use_id, "result", block.content, bool(block.is_error), 0.0))
    console.print()
