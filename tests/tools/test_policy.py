"""Permission modes through the runner: allow, deny, ask (yes, no, always), and no approver."""

from __future__ import annotations

import pytest

from tether.api.types import ToolUseBlock
from tether.tools.base import ToolContext, tool
from tether.tools.policy import CommandPolicy, PermissionPolicy
from tether.tools.runner import ToolRunner

calls: list[str] = []


@tool
def echo(text: str) -> str:
    """Echo the text."""
    calls.append(text)
    return text


@tool
def shout(text: str) -> str:
    """Shout the text."""
    calls.append(text.upper())
    return text.upper()


@pytest.fixture(autouse=True)
def _reset():
    calls.clear()


def use(name: str, text: str = "hi", id: str = "toolu_1") -> ToolUseBlock:
    return ToolUseBlock(id, name, {"text": text})


class Approver:
    def __init__(self, *answers: str) -> None:
        self.answers, self.asked = list(answers), []

    async def __call__(self, call: ToolUseBlock, context: ToolContext) -> str:
        self.asked.append((call.name, call.input, context.run_id))
        return self.answers.pop(0)


async def test_allow_and_deny():
    runner = ToolRunner.of([echo, shout], policy=PermissionPolicy({"shout": "deny"}))
    allowed, denied = await runner.run([use("echo"), use("shout", id="toolu_2")], "run")
    assert allowed.content == "hi" and not allowed.is_error
    assert denied.is_error and "does not allow the tool shout" in denied.content
    assert calls == ["hi"]


async def test_default_mode_applies_to_unlisted_tools():
    runner = ToolRunner.of([echo, shout], policy=PermissionPolicy({"echo": "allow"}, default="deny"))
    results = await runner.run([use("echo"), use("shout", id="toolu_2")], "run")
    assert [r.is_error for r in results] == [None, True]


async def test_ask_yes_and_no():
    approver = Approver("yes", "no")
    runner = ToolRunner.of([echo], policy=PermissionPolicy({"echo": "ask"}, approve=approver))
    first, second = await runner.run([use("echo", "a"), use("echo", "b", id="toolu_2")], "run")
    assert first.content == "a"
    assert second.is_error and "the user denied permission to run echo" in second.content
    assert approver.asked == [("echo", {"text": "a"}, "run"), ("echo", {"text": "b"}, "run")]
    assert calls == ["a"]


async def test_always_allows_the_tool_for_the_rest_of_the_run_only():
    approver = Approver("always", "no")
    policy = PermissionPolicy(default="ask", approve=approver)
    runner = ToolRunner.of([echo, shout], policy=policy)
    results = await runner.run([use("echo", "a"), use("echo", "b", id="t2"), use("echo", "c", id="t3")], "run-1")
    assert [r.content for r in results] == ["a", "b", "c"]
    assert len(approver.asked) == 1  # asked once, though the three calls ran side by side
    other_run = await runner.run([use("echo", "d")], "run-2")
    assert other_run[0].is_error  # "always" was for run-1
    assert policy.mode("echo", "run-1") == "allow" and policy.mode("shout", "run-1") == "ask"


async def test_ask_without_an_approver_refuses():
    runner = ToolRunner.of([echo], policy=PermissionPolicy(default="ask"))
    [result] = await runner.run([use("echo")], "run")
    assert result.is_error and "needs the user's approval" in result.content
    assert calls == []


async def test_a_failing_approver_refuses_without_ending_the_run():
    async def broken(call, context):
        raise RuntimeError("the UI went away")

    runner = ToolRunner.of([echo], policy=PermissionPolicy(default="ask", approve=broken))
    [result] = await runner.run([use("echo")], "run")
    assert result.is_error and "approve echo failed" in result.content


async def test_validation_comes_before_the_question():
    approver = Approver("yes")
    runner = ToolRunner.of([echo], policy=PermissionPolicy(default="ask", approve=approver))
    [result] = await runner.run([ToolUseBlock("t", "echo", {})], "run")
    assert result.is_error and "'text' is a required property" in result.content
    assert approver.asked == []


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="allow, ask or deny"):
        PermissionPolicy({"echo": "maybe"})  # type: ignore[dict-item]


def test_command_policy_deny_wins_over_allow():
    policy = CommandPolicy(allow=(r"^git\b",), deny=(r"git\s+push\s+--force",))
    assert policy.check("git status") is None
    assert "deny pattern" in policy.check("git push --force origin main")
    assert "none of the allowed" in policy.check("make")
