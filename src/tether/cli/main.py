"""The ``tether`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from tether.agent.loop import Agent, Run
from tether.api.client import AnthropicClient
from tether.checks import problems
from tether.cli import aio
from tether.cli import batch as batch_cli
from tether.cli import serve as serve_cli
from tether.cli import sessions as sessions_cli
from tether.cli import tokens as tokens_cli
from tether.cli import worker as worker_cli
from tether.cli.render import JsonRenderer, RichRenderer
from tether.cli.sessions import open_sessions
from tether.config import Settings, project_memory
from tether.errors import TetherError, UserError
from tether.sessions import Sessions
from tether.tools.audit import AuditLog
from tether.tools.policy import PermissionPolicy
from tether.tools.registry import open_tools
from tether.tools.sandbox import Workspace


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tether", description="A production runtime for Claude agents.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one task to the end, rendering it live")
    run.add_argument("task", nargs="?", help="the task (optional with --resume)")
    _agent_options(run)
    run.add_argument("--json", action="store_true", help="print events as JSON lines")

    chat = sub.add_parser("chat", help="a multi-turn conversation in the terminal")
    _agent_options(chat)

    resume = sessions_cli.add_parser(sub).add_parser(
        "resume", help="finish a session's interrupted work and continue it (same as `tether run --resume ID`)")
    resume.add_argument("id")
    resume.add_argument("task", nargs="?", help="a follow-up message")
    _agent_options(resume)
    resume.add_argument("--json", action="store_true", help="print events as JSON lines")

    batch_cli.add_parser(sub)
    worker_cli.add_parsers(sub)
    serve_cli.add_parser(sub)
    tokens_cli.add_parser(sub)

    fake = sub.add_parser("fake-api", help="serve tether's fake Messages API (for tests and demos)")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8765)
    fake.add_argument("--behaviour", default="coding-agent", choices=["echo", "coding-agent"])
    fake.add_argument("--turns", type=int, default=50, help="turns of the simulated coding agent")
    fake.add_argument("--first-token-delay", type=float, default=0.0, help="seconds before each response")
    fake.add_argument("--token-delay", type=float, default=0.0, help="seconds per streamed output token")

    config = sub.add_parser("config", help="show or check the effective configuration")
    config.add_argument("config_command", choices=["show", "check"])
    config.add_argument("--config", type=Path, help="a tether.toml to read")
    config.add_argument("--profile", choices=["dev", "staging", "prod"])

    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check an audit log's hash chain")
    verify.add_argument("file", type=Path)
    return p


def _agent_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model id (default: settings.model, TETHER_MODEL)")
    p.add_argument("--max-turns", type=int)
    p.add_argument("--budget", type=float, help="stop after this many dollars")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--tools", default="", help="comma-separated tool set: bash,editor,python,computer,mcp:NAME")
    p.add_argument("--workspace", type=Path, help="the tools' workspace root (default: the current directory)")
    p.add_argument("--ask", default="", help="comma-separated tools that need your approval for each call")
    p.add_argument("--deny", default="", help="comma-separated tools the agent may not call")
    p.add_argument("--audit", type=Path, help="append an audit log of every tool call to this file")
    p.add_argument("--no-stream", action="store_true", help="call the API without streaming")
    p.add_argument("--config", type=Path, help="a tether.toml to read")
    p.add_argument("--resume", metavar="ID", help="continue a stored session (finishing interrupted work first)")
    p.add_argument("--title", help="the session's title (default: the task)")
    p.add_argument("--tag", action="append", default=[], help="tag the session (repeatable)")
    p.add_argument("--demo", action="store_true",
                   help="run against tether's built-in fake API with a simulated coding agent (no API key)")
    p.add_argument("--demo-turns", type=int, default=8, help="how many turns the simulated agent takes")


def settings_from(args: argparse.Namespace, **extra) -> Settings:
    return Settings.load(
        path=args.config,
        **{
            "model": args.model,
            "limits.max_turns": args.max_turns,
            "limits.max_dollars": args.budget,
            "output.streaming": False if args.no_stream else None,
            **extra,
        },
    )


@contextlib.contextmanager
def _endpoint(args: argparse.Namespace) -> Iterator[dict[str, str] | None]:
    """With --demo, a fake API on loopback for the length of the command."""
    if not args.demo:
        yield None
        return
    from tether.testing import CodingAgent, FakeAPI, SystemClock  # only the demo reaches into tether.testing

    args.tools = args.tools or "bash,editor"
    made = args.workspace is None
    if made:
        args.workspace = Path(tempfile.mkdtemp(prefix="tether-demo-"))
    try:
        with FakeAPI(behaviour=CodingAgent(turns=args.demo_turns), clock=SystemClock()) as fake:
            yield {"api.base_url": fake.base_url, "api.api_key": "demo-key"}
    finally:
        if made:  # kept, to look at what the agent wrote
            print(f"workspace {args.workspace} (made for the demo; remove it when done)", file=sys.stderr)


@contextlib.asynccontextmanager
async def open_agent(args: argparse.Namespace, settings: Settings) -> AsyncIterator[Agent]:
    """The agent the command line describes, with its tools open for as long as it is used."""
    client = AnthropicClient(api_key=settings.api.api_key, base_url=settings.api.base_url,
                             max_retries=settings.api.max_retries, timeout=settings.api.timeout)
    workspace = Workspace(args.workspace or Path.cwd())
    servers = {name: _mcp_server(name, spec) for name, spec in settings.mcp.items()}
    policy = PermissionPolicy({**_modes(args.ask, "ask"), **_modes(args.deny, "deny")}, approve=_approve)
    async with open_tools(args.tools or [], workspace, mcp=servers) as tools:
        yield Agent(client, system=args.system, memory=project_memory(workspace.root), tools=tools,
                    settings=settings, workspace=workspace.root,
                    policy=policy, audit=AuditLog(args.audit) if args.audit else None)
    await client.aclose()


def _mcp_server(name: str, spec: dict):
    from tether.tools.mcp import MCPServer

    return MCPServer(name, **spec)


def _modes(names: str, mode: str) -> dict[str, str]:
    return {name.strip(): mode for name in names.split(",") if name.strip()}


async def _approve(call, context) -> str:
    question = f"Allow {call.name} {json.dumps(call.input, ensure_ascii=False)[:300]}? [y]es / [n]o / [a]lways: "
    answer = (await asyncio.to_thread(input, question)).strip().lower()
    return {"y": "yes", "yes": "yes", "a": "always", "always": "always"}.get(answer, "no")


async def start_run(args: argparse.Namespace, agent: Agent, sessions: Sessions, task: str | None) -> Run:
    """A recorded run: a new session, or the one ``--resume`` names."""
    if args.resume:
        return await sessions.resume(agent, args.resume)
    return await sessions.new(agent, title=args.title or (task or "")[:80], tags=args.tag)


async def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    if not args.task and not args.resume:
        raise UserError("give a task, or --resume SESSION_ID to continue a session")
    render = JsonRenderer() if args.json else RichRenderer()
    outcome = "completed"
    async with open_sessions(settings) as sessions, open_agent(args, settings) as agent:
        run = await start_run(args, agent, sessions, args.task)
        async for event in run.events(args.task):
            render(event)
            if event.type == "run_end":
                outcome = event.outcome
    print(f"session {run.id}", file=sys.stderr)
    return 0 if outcome == "completed" else 1


async def cmd_config(args: argparse.Namespace) -> int:
    settings = Settings.load(path=args.config, profile=args.profile)
    if args.config_command == "show":
        print(json.dumps(settings.redacted(), indent=2, default=str))
        return 0
    found = await problems(settings, service=True)
    for problem in found:
        print(f"✗ {problem}")
    if not found:
        print(f"✓ configuration ok (profile {settings.profile}, model {settings.model})")
    return 1 if found else 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "fake-api":
            from tether.testing import Latency, serve

            serve(host=args.host, port=args.port, behaviour=args.behaviour, agent_turns=args.turns,
                  latency=Latency(args.first_token_delay, args.token_delay)
                  if args.first_token_delay or args.token_delay else None)
            return 0
        if args.command == "audit":
            from tether.tools.audit import verify

            ok, message = verify(args.file)
            print(message)
            return 0 if ok else 1
        if args.command == "config":
            return aio.run(cmd_config(args))
        if args.command == "sessions":
            if args.sessions_command == "resume":
                args.command, args.resume = "run", args.id
            else:
                return aio.run(sessions_cli.command(args, Settings.load(path=args.config)))
        if args.command == "batch":
            return batch_cli.command(args)
        if args.command in ("worker", "enqueue"):
            return worker_cli.command(args)
        if args.command == "serve":
            return serve_cli.command(args)
        if args.command == "tokens":
            return tokens_cli.command(args)
        with _endpoint(args) as endpoint:
            settings = settings_from(args, **(endpoint or {}))
            if args.command == "run":
                return aio.run(cmd_run(args, settings))
            from tether.cli.chat import chat

            return aio.run(chat(args, settings))
    except UserError as exc:
        print(f"tether: {exc}", file=sys.stderr)
        return 2
    except TetherError as exc:
        print(f"tether: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
