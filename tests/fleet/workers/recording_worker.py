"""A distributed-fleet worker whose ``bash`` tool records every execution, for the dead-worker test.

argv: database URL, executor id, fake API base URL, effects file.

The tool appends ``<session id> <tool_use id>`` to the effects file (flushed and fsynced) before it
sleeps and answers, as ``tests/sessions/crash_child.py`` does: the file is the record of every side
effect that ever happened, even in a worker killed a moment later. Runs go through the worker's
``run`` seam with this tool instead of the built-in tool sets; everything else (the workflow, the
session store, resume, the ledger, heartbeats, recovery) is the real thing.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys

from tether import Agent, AnthropicClient, Settings, ToolContext, tool
from tether.agent import events as ev
from tether.config import OutputSettings
from tether.fleet.distributed import Worker, WorkerOptions
from tether.fleet.spec import RunOutcome, RunSpec
from tether.sessions import Sessions
from tether.store.sql import open_store

url, executor_id, base_url, effects = sys.argv[1:5]
rng = random.Random(f"{executor_id}:{os.getpid()}")


@tool(name="bash")
async def bash(command: str, context: ToolContext) -> str:
    """Run a command.

    Args:
        command: the command
    """
    with open(effects, "a") as f:
        f.write(f"{context.run_id} {context.tool_use_id}\n")
        f.flush()
        os.fsync(f.fileno())
    await asyncio.sleep(rng.uniform(0.05, 0.3))
    return f"$ {command}\nok"


async def main() -> int:
    store = await open_store(url)
    sessions = Sessions(store)
    client = AnthropicClient(api_key="dist-key", base_url=base_url, max_retries=5)
    settings = Settings(output=OutputSettings(max_tokens=4096))

    async def run(spec: RunSpec) -> RunOutcome:
        assert spec.session_id is not None
        agent = Agent(client, tools=[bash], system="You are a coding agent.", settings=settings)
        known = await store.get(spec.session_id) is not None
        session = (await sessions.resume(agent, spec.session_id) if known
                   else await sessions.new(agent, session_id=spec.session_id, title=spec.task or ""))
        end = None
        async for event in session.events(spec.task):
            if isinstance(event, ev.RunEnd):
                end = event
        assert end is not None
        return RunOutcome(spec.id, session.id, end.outcome, end.text, end.turns, error=end.error)

    options = WorkerOptions(executor_id=executor_id, concurrency=4, heartbeat=0.3, dead_after=2.0, poll=0.1,
                            drain=5.0)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        return await Worker(url, sessions=sessions, run=run, options=options).serve(stop)
    finally:
        await client.aclose()
        await store.close()


sys.exit(asyncio.run(main()))
