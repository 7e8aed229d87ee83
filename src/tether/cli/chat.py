"""``tether chat``: a conversation in the terminal. Ctrl-C interrupts the current turn, not the program."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
from pathlib import Path

from rich.console import Console

from tether.agent.loop import Agent
from tether.api.types import Message, messages_from_json, messages_to_json
from tether.cli.render import RichRenderer, summary
from tether.config import Settings

HELP = "/cost  /save FILE  /load FILE  /model NAME  /exit"


async def chat(args: argparse.Namespace, settings: Settings) -> int:
    from tether.cli.main import open_agent

    async with contextlib.AsyncExitStack() as stack:
        return await _chat(args, settings, stack, open_agent)


async def _chat(args, settings: Settings, stack: contextlib.AsyncExitStack, open_agent) -> int:
    console = Console(highlight=False)
    agent = await stack.enter_async_context(open_agent(args, settings))
    messages: list[Message] = []
    render = RichRenderer(console)
    last_end = None
    console.print(f"[bold]tether chat[/] with {agent.model_info.id} — {HELP}")
    while True:
        try:
            line = (await asyncio.to_thread(input, "> ")).strip()
        except (EOFError, KeyboardInterrupt):
            return 0
        if not line:
            continue
        if line.startswith("/"):
            command, _, arg = line.partition(" ")
            if command == "/exit":
                return 0
            if command == "/cost":
                console.print(summary(last_end) if last_end else "nothing spent yet")
            elif command == "/save" and arg:
                Path(arg).write_text(messages_to_json(messages))
                console.print(f"saved {len(messages)} messages to {arg}")
            elif command == "/load" and arg:
                messages = messages_from_json(Path(arg).read_text())
                console.print(f"loaded {len(messages)} messages from {arg}")
            elif command == "/model" and arg:
                settings = dataclasses.replace(settings, model=arg)
                agent = await stack.enter_async_context(open_agent(args, settings))
                console.print(f"model is now {agent.model_info.id}")
            else:
                console.print(HELP)
            continue
        messages, last_end = await _turn(agent, messages, line, render, console)


async def _turn(agent: Agent, messages: list[Message], line: str, render, console: Console):
    """One user turn, cancellable with Ctrl-C; returns the conversation as it stands after it."""
    run = agent.start(messages=messages)
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
    return run.messages, ended
