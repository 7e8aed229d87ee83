"""A process the crash test kills with SIGKILL at random points; each start resumes the session.

argv: store file, session id, fake API base URL, effects file, seed.
The ``bash`` tool appends its tool_use id to the effects file (flushed and fsynced) before it
sleeps and answers: the file is the record of every side effect that ever happened.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

from tether import Agent, AnthropicClient, Settings, ToolContext, tool
from tether.config import OutputSettings
from tether.sessions import Sessions
from tether.store.sql import open_store

store_path, session_id, base_url, effects, seed = sys.argv[1:6]
rng = random.Random(f"{seed}:{os.getpid()}")


@tool(name="bash")
async def bash(command: str, context: ToolContext) -> str:
    """Run a command.

    Args:
        command: the command
    """
    with open(effects, "a") as f:
        f.write(context.tool_use_id + "\n")
        f.flush()
        os.fsync(f.fileno())
    await asyncio.sleep(rng.uniform(0.0, 0.25))
    return f"$ {command}\nok"


async def main() -> None:
    store = await open_store(store_path)
    sessions = Sessions(store)
    agent = Agent(AnthropicClient(api_key="crash-key", base_url=base_url, max_retries=5), tools=[bash],
                  system="You are a coding agent.", settings=Settings(output=OutputSettings(max_tokens=4096)))
    if await store.get(session_id) is None:
        run = await sessions.new(agent, session_id=session_id)
        task = "build the project"
    else:
        run = await sessions.resume(agent, session_id)
        task = None
    print("ready", flush=True)
    async for event in run.events(task):
        if event.type == "run_end":
            print(f"end {event.outcome}", flush=True)
    await store.close()


asyncio.run(main())
