"""Prompt caching over whole runs against the fake API's cache model."""

from __future__ import annotations

import itertools
import json

from tether import Settings, tool
from tether.config import CacheSettings
from tether.testing import CodingAgent, Turn, tool_use

SYSTEM = "You are a careful coding agent. " * 200  # ~1,600 tokens: over Opus 4.8's 1,024 minimum


@tool(name="bash")
def fake_bash(command: str) -> str:
    """Run a shell command.

    Args:
        command: the command
    """
    return f"$ {command}\n" + "\n".join(f"line {i}: ok" for i in range(40))


def strip_cache_control(value):
    if isinstance(value, dict):
        return {k: strip_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [strip_cache_control(v) for v in value]
    return value


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def test_over_a_50_turn_run_each_request_prefix_is_byte_identical_and_read_from_cache(
        fake, key, make_agent):
    fake.behave(CodingAgent(turns=50, seed=7), key=key)
    agent = make_agent(tools=[fake_bash], system=SYSTEM)
    events = [e async for e in agent.stream("build the project")]
    assert events[-1].outcome == "completed" and events[-1].turns == 50
    bodies = [strip_cache_control(r.json()) for r in fake.requests_for(key)]
    assert len(bodies) == 50
    for before, after in itertools.pairwise(bodies):
        assert dumps(before["tools"]) == dumps(after["tools"])
        assert dumps(before["system"]) == dumps(after["system"])
        n = len(before["messages"])
        assert dumps(before["messages"]) == dumps(after["messages"][:n])
    reports = [e for e in events if e.type == "usage"]
    assert reports[0].usage.cache_creation_input_tokens > 0
    assert all(r.usage.cache_read_input_tokens > 0 for r in reports[1:])
    assert [e for e in events if e.type == "warning"] == []
    total = events[-1].usage
    assert total.cache_read_input_tokens / total.prompt_tokens > 0.8
    breakpoints = [dumps(r.json()).count('"cache_control"') for r in fake.requests_for(key)]
    assert max(breakpoints) <= 4


async def test_a_turn_adding_many_blocks_still_hits_thanks_to_intermediate_breakpoints(fake, key, make_agent):
    many = Turn([tool_use("bash", {"command": f"echo {i}"}) for i in range(12)])  # 12 calls + 12 results
    fake.script([Turn([tool_use("bash", {"command": "ls"})]), many, "done"], key=key)
    events = [e async for e in make_agent(tools=[fake_bash], system=SYSTEM).stream("go")]
    reports = [e for e in events if e.type == "usage"]
    third = reports[2].usage
    # The third request reads everything up to the previous tail plus what the intermediate breakpoint wrote.
    assert third.cache_read_input_tokens > reports[1].usage.cache_read_input_tokens
    assert [e for e in events if e.type == "warning"] == []


async def test_a_miss_after_the_ttl_expired_is_explained(fake, key, make_agent):
    @tool
    def nap() -> str:
        """Sleep for a while."""
        fake.clock.advance(400)  # past the 5-minute TTL
        return "rested"

    fake.script([Turn([tool_use("nap", {})]), "awake"], key=key)
    events = [e async for e in make_agent(tools=[nap], system=SYSTEM).stream("nap")]
    warnings = [e for e in events if e.type == "warning"]
    assert len(warnings) == 1 and warnings[0].code == "cache_miss" and "expired" in warnings[0].message


async def test_with_a_one_hour_ttl_the_cache_survives_the_nap(fake, key, make_agent):
    @tool
    def nap() -> str:
        """Sleep for a while."""
        fake.clock.advance(400)
        return "rested"

    fake.script([Turn([tool_use("nap", {})]), "awake"], key=key)
    settings = Settings(cache=CacheSettings(ttl="1h"))
    events = [e async for e in make_agent(tools=[nap], system=SYSTEM, settings=settings).stream("nap")]
    reports = [e for e in events if e.type == "usage"]
    assert reports[0].usage.cache_write_1h_tokens > 0 and reports[1].usage.cache_read_input_tokens > 0


async def test_with_caching_off_no_breakpoint_is_sent(fake, key, make_agent):
    fake.script(["hi"], key=key)
    settings = Settings(cache=CacheSettings(enabled=False))
    await make_agent(system=SYSTEM, settings=settings).run("hi")
    assert "cache_control" not in fake.last_request(key).body.decode()


async def test_project_memory_is_a_cached_system_block(fake, key, make_agent, tmp_path):
    from tether.config import project_memory

    (tmp_path / "AGENTS.md").write_text("Always run the tests. " * 300)
    (tmp_path / "TETHER.md").write_text("Prefer small commits.")
    memory = project_memory(tmp_path)
    fake.script([Turn([tool_use("bash", {"command": "ls"})]), "ok"], key=key)
    events = [e async for e in make_agent(tools=[fake_bash], system="Be brief.", memory=memory).stream("go")]
    system = fake.last_request(key).json()["system"]
    assert [b["text"][:30] for b in system] == ["Be brief.", memory[:30]]
    assert "Prefer small commits." in system[1]["text"] and "cache_control" in system[1]
    second = [e for e in events if e.type == "usage"][1]
    assert second.usage.cache_read_input_tokens > 0
    assert project_memory(tmp_path / "nowhere") is None
