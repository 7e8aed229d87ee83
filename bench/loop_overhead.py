"""Client CPU time per turn of the same 50-turn, tool-using, streamed conversation, through
tether, a bare loop written directly on the anthropic SDK, and pydantic-ai's Agent.

The fake API runs in its own process (``tether fake-api``, the simulated coding agent), so the CPU
time measured here (``time.process_time``) is the client's. Each contender runs ``--rounds`` times,
interleaved; the median per-turn time is reported. Run: ``python bench/loop_overhead.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import anthropic

from tether import Agent, AnthropicClient, Settings, tool
from tether.config import OutputSettings
from tether.testing.process import fake_api_process as fake_api

MODEL = "claude-opus-4-8"
MAX_TOKENS = 8192
TURNS = 50
SYSTEM = "You are a careful coding agent working in a small Python repository. " * 40
TASK = "Build the project, then fix what the checks find."
KEY = "bench-key"


def bash_output(command: str) -> str:
    return f"$ {command}\n" + "\n".join(f"{i:4d}  ok  {command[:40]}" for i in range(30))


BASH_SCHEMA = {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}


async def run_tether(base_url: str) -> int:
    @tool(name="bash")
    def bash(command: str) -> str:
        """Run a shell command.

        Args:
            command: the command
        """
        return bash_output(command)

    client = AnthropicClient(api_key=KEY, base_url=base_url, max_retries=0)
    settings = Settings(model=MODEL, output=OutputSettings(max_tokens=MAX_TOKENS))
    result = await Agent(client, system=SYSTEM, tools=[bash], settings=settings).run(TASK)
    await client.aclose()
    return result.turns


async def run_bare(base_url: str) -> int:
    client = anthropic.AsyncAnthropic(api_key=KEY, base_url=base_url, max_retries=0)
    tools = [{"name": "bash", "description": "Run a shell command.", "input_schema": BASH_SCHEMA}]
    messages: list[dict] = [{"role": "user", "content": TASK}]
    turns = 0
    while True:
        async with client.messages.stream(model=MODEL, max_tokens=MAX_TOKENS, system=SYSTEM, tools=tools,
                                          messages=messages) as stream:
            async for _ in stream:
                pass
            message = await stream.get_final_message()
        turns += 1
        messages.append({"role": "assistant", "content": message.content})
        if message.stop_reason != "tool_use":
            break
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": b.id, "content": bash_output(b.input["command"])}
            for b in message.content if b.type == "tool_use"]})
    await client.close()
    return turns


async def run_pydantic_ai(base_url: str) -> int:
    from pydantic_ai import Agent as PAgent
    from pydantic_ai.models.anthropic import AnthropicModel, AnthropicModelSettings
    from pydantic_ai.providers.anthropic import AnthropicProvider

    client = anthropic.AsyncAnthropic(api_key=KEY, base_url=base_url, max_retries=0)
    model = AnthropicModel(MODEL, provider=AnthropicProvider(anthropic_client=client))
    agent = PAgent(model, instructions=SYSTEM, model_settings=AnthropicModelSettings(max_tokens=MAX_TOKENS))

    @agent.tool_plain(name="bash")
    def bash(command: str) -> str:
        """Run a shell command."""
        return bash_output(command)

    turns = 0
    async with agent.iter(TASK) as run:
        async for node in run:
            if PAgent.is_model_request_node(node):
                turns += 1
                async with node.stream(run.ctx) as events:
                    async for _ in events:
                        pass
    await client.close()
    return turns


async def measure(contender, base_url: str) -> float:
    start = time.process_time()
    turns = await contender(base_url)
    spent = time.process_time() - start
    if turns != TURNS:
        raise RuntimeError(f"{contender.__name__} took {turns} turns, expected {TURNS}")
    return spent / turns * 1000


async def main(rounds: int) -> None:
    contenders = {"tether": run_tether, "bare_sdk": run_bare}
    try:
        import pydantic_ai  # noqa: F401

        contenders["pydantic_ai"] = run_pydantic_ai
    except ImportError:
        print("pydantic-ai is not installed (pip install -e '.[bench]'): skipping it")
    with fake_api("--behaviour", "coding-agent", "--turns", str(TURNS)) as base_url:
        for contender in contenders.values():  # warm-up: imports, connection pools
            await measure(contender, base_url)
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, contender in contenders.items():
                samples[name].append(await measure(contender, base_url))
    per_turn = {name: statistics.median(values) for name, values in samples.items()}
    for name, ms in per_turn.items():
        print(f"{name:12s} {ms:7.3f} ms client CPU per turn (median of {rounds} runs of {TURNS} turns)")
    figures = {f"{name}_ms_per_turn": f"{ms:.3f}" for name, ms in per_turn.items()}
    for name in per_turn:
        if name != "tether":
            figures[f"per_turn_ratio_vs_{name.removesuffix('_sdk') if name == 'bare_sdk' else name}"] = (
                f"{per_turn['tether'] / per_turn[name]:.2f}")
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args().rounds))
