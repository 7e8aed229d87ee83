"""The audit log: what a call records, redaction, and tamper detection by the hash chain."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from tether.api.types import ToolUseBlock
from tether.tools.audit import GENESIS, AuditEntry, AuditLog, redact, verify
from tether.tools.base import tool
from tether.tools.policy import PermissionPolicy
from tether.tools.runner import ToolRunner


@tool
def echo(text: str, api_key: str = "") -> str:
    """Echo the text."""
    return text


@tool
async def slow(seconds: float) -> str:
    """Sleep."""
    await asyncio.sleep(seconds)
    return "done"


def entry(i: int) -> AuditEntry:
    return AuditEntry("run", f"toolu_{i}", "echo", {"text": str(i)}, "allowed", "2026-01-01T00:00:00+00:00",
                      1.0, "ok", "0" * 64)


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_every_call_is_recorded_through_the_runner(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    runner = ToolRunner.of([echo], audit=log, policy=PermissionPolicy({"echo": "allow"}))
    key = "sk-ant-api03-" + "x" * 40
    await runner.run([
        ToolUseBlock("toolu_1", "echo", {"text": f"curl -H 'x-api-key: {key}'", "api_key": key}),
        ToolUseBlock("toolu_2", "nope", {}),
        ToolUseBlock("toolu_3", "echo", {}),
    ], "run-7")
    written = lines(log.path)  # in the order the calls finished
    first, unknown, invalid = sorted(written, key=lambda line: line["tool_use_id"])
    assert first["run_id"] == "run-7" and first["tool_use_id"] == "toolu_1" and first["tool"] == "echo"
    assert first["input"] == {"text": "curl -H 'x-api-key: [REDACTED]'", "api_key": "[REDACTED]"}
    assert key not in log.path.read_text()
    assert first["decision"] == "allowed" and first["status"] == "ok"
    assert first["output_sha256"] == hashlib.sha256(f"curl -H 'x-api-key: {key}'".encode()).hexdigest()
    assert first["started_at"].endswith("+00:00") and first["duration_ms"] >= 0
    assert written[0]["prev"] == GENESIS and written[1]["prev"] == written[0]["hash"]
    assert (unknown["decision"], unknown["status"]) == ("unknown-tool", "error")
    assert (invalid["decision"], invalid["status"]) == ("invalid", "error")
    assert verify(log.path) == (True, "3 lines, chain intact")


async def test_denials_and_cancellations_are_recorded(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    runner = ToolRunner.of([echo, slow], audit=log, policy=PermissionPolicy({"echo": "deny"}))
    await runner.run([ToolUseBlock("t1", "echo", {"text": "x"})], "run")
    task = asyncio.create_task(runner.run([ToolUseBlock("t2", "slow", {"seconds": 30})], "run"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    denied, cancelled = lines(log.path)
    assert (denied["decision"], denied["status"]) == ("denied", "error")
    assert (cancelled["status"], cancelled["output_sha256"]) == ("cancelled", None)


def test_redact():
    value = {"password": "p", "nested": {"GITHUB_TOKEN": "t", "note": "AKIAABCDEFGHIJKLMNOP here"},
             "items": ["Bearer abcdefghijklmnopqrstuvwxyz", "plain"], "author": "ann", "empty_token": ""}
    assert redact(value) == {"password": "[REDACTED]", "nested": {"GITHUB_TOKEN": "[REDACTED]",
                             "note": "[REDACTED] here"}, "items": ["[REDACTED]", "plain"], "author": "ann",
                             "empty_token": ""}


def write(tmp_path, count=4):
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(count):
        log.write(entry(i))
    return log


def test_verify_names_an_edited_line(tmp_path):
    log = write(tmp_path)
    text = log.path.read_text().splitlines()
    text[2] = text[2].replace('"text":"2"', '"text":"rm -rf /"')
    log.path.write_text("\n".join(text) + "\n")
    assert verify(log.path) == (False, "line 3: its hash does not match its content: the line was edited")


def test_verify_names_a_deleted_or_moved_line(tmp_path):
    log = write(tmp_path)
    text = log.path.read_text().splitlines()
    log.path.write_text("\n".join(text[:1] + text[2:]) + "\n")
    ok, message = verify(log.path)
    assert not ok and message.startswith("line 2: its prev does not match")
    log.path.write_text("\n".join([text[0], text[2], text[1], text[3]]) + "\n")
    assert verify(log.path)[1].startswith("line 2:")


def test_verify_catches_garbage_and_a_cut_tail(tmp_path):
    log = write(tmp_path)
    head = log.head
    text = log.path.read_text().splitlines()
    log.path.write_text("\n".join(text[:3]) + "\n")
    assert verify(log.path)[0]  # a shorter chain is still a chain...
    ok, message = verify(log.path, head=head)  # ...unless the last hash was kept elsewhere
    assert not ok and "cut off the end" in message
    log.path.write_text("\n".join([*text[:2], "{not json"]) + "\n")
    assert verify(log.path) == (False, "line 3: not valid JSON (edited or truncated)")


def test_a_new_log_object_continues_the_chain(tmp_path):
    write(tmp_path, 2)
    again = AuditLog(tmp_path / "audit.jsonl")
    again.write(entry(9))
    assert verify(again.path) == (True, "3 lines, chain intact")
