"""The simulated coding agent, driven through the SDK with real tool execution in a temp directory."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import anthropic
import jsonschema
import pytest

from tether.testing import CodingAgent, FakeAPI

MODEL = "claude-opus-4-8"
BASH = {"type": "bash_20250124", "name": "bash"}
EDITOR = {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
TASK = [{"role": "user", "content": "Make the scaling helpers skip missing values."}]


def run_bash(root: Path, tool_input: dict[str, Any]) -> tuple[str, bool]:
    done = subprocess.run(
        ["bash", "-c", tool_input["command"]], cwd=root, capture_output=True, text=True, timeout=20
    )
    return done.stdout + done.stderr, done.returncode != 0


def run_editor(root: Path, tool_input: dict[str, Any]) -> tuple[str, bool]:
    path = root / tool_input["path"]
    command = tool_input["command"]
    if command == "view":
        if path.is_dir():
            return "\n".join(sorted(str(p.relative_to(root)) for p in path.rglob("*"))), False
        lines = path.read_text().splitlines()
        start, end = tool_input.get("view_range", [1, len(lines)])
        return "\n".join(lines[start - 1 : end]), False
    if command == "create":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tool_input["file_text"])
        return "created", False
    if command == "str_replace":
        text = path.read_text()
        if text.count(tool_input["old_str"]) != 1:
            return f"old_str found {text.count(tool_input['old_str'])} times", True
        path.write_text(text.replace(tool_input["old_str"], tool_input["new_str"]))
        return "edited", False
    return f"unknown command {command}", True


def drive(
    client: anthropic.Anthropic, tools: list[dict], root: Path, **extra: Any
) -> list[anthropic.types.Message]:
    """Run the agent loop to the end; every tool call must succeed."""
    runners = {"bash": run_bash, "str_replace_based_edit_tool": run_editor}
    messages: list[dict[str, Any]] = list(TASK)
    replies = []
    while True:
        with client.messages.stream(
            model=MODEL, max_tokens=8000, messages=messages, tools=tools, **extra
        ) as stream:
            reply = stream.get_final_message()
        replies.append(reply)
        messages.append(
            {
                "role": "assistant",
                "content": [
                    b.model_dump(exclude={"parsed_output"}, exclude_none=True) for b in reply.content
                ],
            }
        )
        if reply.stop_reason != "tool_use":
            return replies
        results = []
        for block in (b for b in reply.content if b.type == "tool_use"):
            output, failed = runners[block.name](root, block.input)
            assert not failed, (block.input, output)
            results.append(
                {"type": "tool_result", "tool_use_id": block.id, "content": output or "(no output)"}
            )
        messages.append({"role": "user", "content": results})


def test_a_fifty_turn_run_with_bash_and_editor(tmp_path: Path):
    with (
        FakeAPI(behaviour=CodingAgent(turns=50, seed=7)) as fake,
        anthropic.Anthropic(base_url=fake.base_url, api_key="k") as client,
    ):
        replies = drive(client, [BASH, EDITOR], tmp_path)
    assert len(replies) == 50
    assert all(r.stop_reason == "tool_use" for r in replies[:-1]) and replies[-1].stop_reason == "end_turn"
    outputs = [r.usage.output_tokens for r in replies]
    assert 150 <= sum(outputs) / len(outputs) <= 700 and max(outputs) < 2000
    used = {
        (b.name, b.input.get("command", "")[:12]) for r in replies for b in r.content if b.type == "tool_use"
    }
    assert {name for name, _ in used} == {"bash", "str_replace_based_edit_tool"}
    assert {"create", "view", "str_replace"} <= {command for name, command in used if name != "bash"}
    edited = list(tmp_path.rglob("*.py"))
    assert len(edited) == 4 and any("shifted" in p.read_text() for p in edited)
    assert "Summary" in replies[-1].content[-1].text


def test_bash_only_runs_real_commands(tmp_path: Path):
    with (
        FakeAPI(behaviour=CodingAgent(turns=14, seed=3)) as fake,
        anthropic.Anthropic(base_url=fake.base_url, api_key="k") as client,
    ):
        replies = drive(client, [BASH], tmp_path)
    assert len(replies) == 14
    assert {b.name for r in replies for b in r.content if b.type == "tool_use"} == {"bash"}
    assert any("shifted" in p.read_text() for p in tmp_path.rglob("*.py"))


def test_editor_only(tmp_path: Path):
    with (
        FakeAPI(behaviour=CodingAgent(turns=12, seed=5)) as fake,
        anthropic.Anthropic(base_url=fake.base_url, api_key="k") as client,
    ):
        replies = drive(client, [EDITOR], tmp_path)
    assert {b.name for r in replies for b in r.content if b.type == "tool_use"} == {
        "str_replace_based_edit_tool"
    }


def test_a_custom_tool_gets_an_input_its_schema_accepts(fake: FakeAPI, key, client):
    schema = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 3},
            "limit": {"type": "integer", "minimum": 5},
            "mode": {"enum": ["fast", "slow"]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "filter": {
                "type": "object",
                "properties": {"active": {"type": "boolean"}},
                "required": ["active"],
            },
        },
        "required": ["query", "limit", "mode", "tags", "filter"],
        "additionalProperties": False,
    }
    fake.behave(CodingAgent(turns=5), key=key)
    reply = client.messages.create(
        model=MODEL, max_tokens=4000, messages=TASK, tools=[{"name": "search_docs", "input_schema": schema}]
    )
    call = next(b for b in reply.content if b.type == "tool_use")
    assert call.name == "search_docs"
    jsonschema.validate(call.input, schema)


def test_without_tools_it_just_answers(fake: FakeAPI, key, client):
    fake.behave(CodingAgent(turns=5), key=key)
    reply = client.messages.create(model=MODEL, max_tokens=4000, messages=TASK)
    assert reply.stop_reason == "end_turn" and reply.content[-1].type == "text"


@pytest.mark.parametrize("seed,same", [(11, True), (12, False)])
def test_runs_are_deterministic_from_the_seed(tmp_path: Path, seed: int, same: bool):
    def inputs(agent_seed: int, root: Path) -> list[Any]:
        root.mkdir()
        with (
            FakeAPI(behaviour=CodingAgent(turns=10, seed=agent_seed)) as fake,
            anthropic.Anthropic(base_url=fake.base_url, api_key="k") as client,
        ):
            replies = drive(client, [BASH, EDITOR], root)
        return [(b.name, b.input) for r in replies for b in r.content if b.type == "tool_use"]

    first = inputs(11, tmp_path / "a")
    second = inputs(seed, tmp_path / "b")
    assert (first == second) is same


def test_with_thinking_each_turn_starts_with_a_signed_thought(tmp_path: Path):
    with (
        FakeAPI(behaviour=CodingAgent(turns=6, seed=1)) as fake,
        anthropic.Anthropic(base_url=fake.base_url, api_key="k") as client,
    ):
        replies = drive(client, [BASH, EDITOR], tmp_path, thinking={"type": "adaptive"})
    assert len(replies) == 6  # each follow-up sent the signed thinking back and was accepted
    assert all(r.content[0].type == "thinking" and r.content[0].signature for r in replies)
