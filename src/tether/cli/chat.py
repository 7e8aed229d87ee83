"""``tether chat``: a conversation in the terminal, recorded as a session.

Ctrl-C interrupts the current turn, not the program: the turn's stream is closed, its tools are
stopped, and the conversation stays valid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
from pathlib import Path

from rich.console import Console

from tether.agent.loop import Run
from tether.api.types import messages_from_json, messages_to_json
from tether.cli.render import RichRenderer, summary
from tether.config import Settings

HELP = "/cost  /save FILE  /load FILE  /model NAME  /exit"


async def chat(args: argparse.Namespace, settings: Settings) -> int:
    from tether.cli.main import open_agent, start_run
    from tether.cli.sessions import open_sessions

    console = Console(highlight=False)
    render = RichRenderer(console)
    async with contextlib.AsyncExitStack() as stack:
        sessions = await stack.enter_async_context(open_sessions(settings))
        agent = await stack.enter_async_context(open_agent(args, settings))
        run = await start_run(args, agent, sessions, "chat")
        last_end = None
        console.print(f"[bold]tether chat[/] with {agent.model_info.id}, session {run.id} — {HELP}")
        if run.pending_calls():
            last_end = await _turn(run, None, render, console) or last_end
        while True:
            try:
                line = (await asyncio.to_thread(input, "> ")).strip()
            except (EOFError, KeyboardInterrupt):
                return 0
            if not line:
                continue
            if not line.startswith("/"):
                last_end = await _turn(run, line, render, console) or last_end
                continue
            command, _, arg = line.partition(" ")
            if command == "/exit":
                return 0
            if command == "/cost":
                console.print(summary(last_end) if last_end else "nothing spent yet")
            elif command == "/save" and arg:
                Path(arg).write_text(messages_to_json(run.messages))
                console.print(f"saved {len(run.messages)} messages to {arg}")
            elif command == "/load" and arg:
                run = await sessions.adopt(agent, messages_from_json(Path(arg).read_text()), title=arg)
                console.print(f"loaded {len(run.messages)} messages from {arg} into session {run.id}")
            elif command == "/model" and arg:
                settings = dataclasses.replace(settings, model=arg)
                agent = await stack.enter_async_context(open_agent(args, settings))
                run = agent.start(messages=run.messages, run_id=run.id, journal=run.journal)
                console.print(f"model is now {agent.model_info.id}")
            else:
                console.print(HELP)


async def _turn(run: Run, line: str | None, render, console: Console):
    """One user turn, cancellable with Ctrl-C. Returns its RunEnd event, if it got that far."""
    ended = None

    async def consume() -> None:
        nonlocal ended
        async for event in run.events(line):
            render(event)
            if event.type == "run_end":
                ended = event

    task = asyncio.ensure_future(consume())
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if task.cancelled():
            console.print("\n[yellow]interrupted[/]")
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    return ended
