"""Running one ``RunSpec`` as a recorded session: the unit of work of every fleet backend."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from tether.agent import events as ev
from tether.agent.loop import Agent
from tether.api.client import ModelClient
from tether.config import Settings, project_memory
from tether.fleet.spec import RunOutcome, RunSpec
from tether.sessions import Sessions
from tether.store.base import StoreConflict
from tether.tools.policy import PermissionPolicy
from tether.tools.registry import open_tools
from tether.tools.sandbox import Workspace

Observer = Callable[[ev.Event], Awaitable[None] | None]


def settings_for(spec: RunSpec, settings: Settings) -> Settings:
    limits = dataclasses.replace(settings.limits, **spec.limits)
    return dataclasses.replace(settings, model=spec.model or settings.model, limits=limits)


def policy_for(spec: RunSpec) -> PermissionPolicy | None:
    """The spec's permission modes (``"*"``: every other tool), asking ``spec.approve``; None: allow all."""
    if not spec.permissions:
        return None
    modes = dict(spec.permissions)
    default = modes.pop("*", "allow")
    return PermissionPolicy(modes, default, approve=spec.approve)  # type: ignore[arg-type]


def _workspace(path: str | None) -> tuple[Path, str | None]:
    """The run's workspace (``path``, made if need be, or a new temporary folder) and its project
    memory: the file work of a run's start, for one thread hop."""
    root = Path(path) if path else Path(tempfile.mkdtemp(prefix="tether-run-"))
    root.mkdir(parents=True, exist_ok=True)
    return root, project_memory(root)


async def execute(spec: RunSpec, *, client: ModelClient, sessions: Sessions, settings: Settings,
                  observe: Observer | None = None) -> RunOutcome:
    """Run ``spec`` to its end, recorded in ``sessions``. A spec naming a stored session resumes it
    (its ``task``, if any, is a follow-up message); otherwise a new session is made.

    Errors of the run itself (limits, API errors, refusals) are in the outcome, not raised.
    """
    async with contextlib.AsyncExitStack() as stack:  # the workspace made and removed off the event loop
        root, memory = await asyncio.to_thread(_workspace, spec.workspace)
        if not spec.workspace:
            stack.push_async_callback(asyncio.to_thread, shutil.rmtree, root, True)
        async with open_tools(spec.tools, Workspace(root)) as tools:
            agent = Agent(client, system=spec.system, memory=memory, tools=tools,
                          settings=settings_for(spec, settings), workspace=root, policy=policy_for(spec))
            try:
                run = await sessions.new(agent, title=spec.title or (spec.task or "")[:80], tags=spec.tags,
                                         session_id=spec.session_id)
            except StoreConflict:  # the spec names a stored session: continue it
                assert spec.session_id is not None
                run = await sessions.resume(agent, spec.session_id)
            end: ev.RunEnd | None = None
            async for event in run.events(spec.task):
                if observe is not None and (pending := observe(event)) is not None:
                    await pending
                if isinstance(event, ev.RunEnd):
                    end = event
    assert end is not None
    u = end.usage
    return RunOutcome(spec.id, run.id, end.outcome, end.text, end.turns, u.input_tokens, u.output_tokens,
                      u.cache_read_input_tokens, u.cache_creation_input_tokens, end.dollars, end.error)
