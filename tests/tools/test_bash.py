"""The bash tool against a real bash: persistence, timeouts, bounded output, cancellation, policy."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tether.tools.base import ToolContext, ToolError
from tether.tools.bash import BashTool
from tether.tools.output import BoundedBuffer
from tether.tools.policy import CommandPolicy
from tether.tools.sandbox import Limits, Workspace
from tether.tools.shell import ansi_c_quote

CTX = ToolContext("run-1", "toolu_1")


@pytest.fixture
async def bash(tmp_path):
    tool = BashTool(Workspace(tmp_path), command_timeout=1.5)
    yield tool
    await tool.aclose()


async def run(tool, command, ctx=CTX):
    return await tool.call({"command": command}, ctx)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead too
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_spec_is_the_api_tool():
    tool = BashTool(Workspace("/tmp"))
    assert tool.spec().to_wire() == {"type": "bash_20250124", "name": "bash"}
    assert set(tool.input_schema["properties"]) == {"command", "restart"}


async def test_stdout_stderr_and_exit_code(bash):
    out = await run(bash, "echo out; echo err >&2; exit_code() { return 3; }; exit_code")
    assert out.content == "out\n[stderr]\nerr\n[exit code 3]"
    assert out.is_error
    ok = await run(bash, "printf 'no newline'")
    assert ok.content == "no newline" and not ok.is_error
    assert (await run(bash, "true")).content == "(no output)"


async def test_cwd_and_exported_variables_persist(bash, tmp_path):
    (tmp_path / "sub").mkdir()
    await run(bash, "cd sub && export GREETING=hello && LOCAL=1")
    out = await run(bash, "pwd; echo $GREETING $LOCAL")
    assert out.content == f"{tmp_path / 'sub'}\nhello 1"


async def test_each_run_has_its_own_shell(bash):
    await run(bash, "export WHO=first")
    other = await run(bash, "echo ${WHO:-unset}", ToolContext("run-2", "toolu_2"))
    assert other.content == "unset"
    await bash.aclose("run-2")
    assert (await run(bash, "echo $WHO")).content == "first"


async def test_environment_carries_no_secrets(tmp_path, monkeypatch):
    for name, value in {"ANTHROPIC_API_KEY": "sk-ant-api03-secret", "GITHUB_TOKEN": "ghp_x", "AWS_SECRET_ACCESS_KEY": "x",
                        "DB_PASSWORD": "hunter2", "SERVICE_API_KEY": "k", "MY_SECRET": "s"}.items():
        monkeypatch.setenv(name, value)
    tool = BashTool(Workspace(tmp_path))
    try:
        env = (await run(tool, "env")).content
    finally:
        await tool.aclose()
    names = {line.split("=", 1)[0] for line in env.splitlines()}
    assert not names & {"ANTHROPIC_API_KEY", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD",
                        "SERVICE_API_KEY", "MY_SECRET"}
    assert "sk-ant" not in env and "hunter2" not in env
    assert f"HOME={tmp_path}" in env.splitlines()


async def test_stdin_is_closed(bash):
    started = time.monotonic()
    out = await run(bash, "cat; read line; echo read=$?")
    assert out.content == "read=1"
    assert time.monotonic() - started < 1


async def test_quoting_and_syntax_errors_cannot_eat_the_sentinel(bash):
    out = await run(bash, "echo 'unterminated")
    assert out.is_error and "unexpected EOF" in out.content
    assert "exit code 2" in out.content
    heredoc = await run(bash, "cat <<'EOF'\n$HOME 'quoted' \\back\nEOF")
    assert heredoc.content == "$HOME 'quoted' \\back"
    traced = await run(bash, "set -x; echo hi")
    assert traced.content.startswith("hi\n[stderr]")
    assert (await run(bash, "set +x; echo ünïcödé ✓")).content.startswith("ünïcödé ✓")


async def test_timeout_kills_the_process_group_and_the_next_call_works(bash, tmp_path):
    started = time.monotonic()
    out = await run(bash, "echo before; sleep 60 & echo $! > bg.pid; sleep 60")
    assert time.monotonic() - started < 4
    assert out.is_error
    assert "did not finish within 1.5 seconds" in out.content and "before" in out.content
    background = int((tmp_path / "bg.pid").read_text())
    await asyncio.sleep(0.1)
    assert not alive(background)
    assert (await run(bash, "echo again; pwd")).content == f"again\n{tmp_path}"


async def test_heavy_output_keeps_head_and_tail(tmp_path):
    # The gigabyte case is in test_bad_input.py; here, what the model sees of 50 MB.
    tool = BashTool(Workspace(tmp_path), max_output_bytes=10_000)
    try:
        out = await run(tool, "echo first; yes | head -c 50000000; echo last; echo done >&2")
    finally:
        await tool.aclose()
    assert out.content.startswith("first\ny\ny\n")
    assert "bytes of output dropped: 50000011 bytes in all" in out.content
    assert len(out.content) < 11_000
    assert out.content.endswith("y\nlast\n[stderr]\ndone")


async def test_binary_and_invalid_utf8_are_replaced_and_flagged(bash):
    out = await run(bash, r"printf 'ok \xff\xfe bad \x00 nul'")
    assert out.content.startswith("ok \ufffd\ufffd bad \ufffd nul")
    assert "not valid UTF-8" in out.content
    clean = await run(bash, "echo fine")
    assert "UTF-8" not in clean.content


async def test_restart_gives_a_fresh_shell(bash, tmp_path):
    await run(bash, "export X=1; cd /")
    restarted = await bash.call({"restart": True}, CTX)
    assert "restarted" in restarted.content
    assert (await run(bash, "echo ${X:-none}; pwd")).content == f"none\n{tmp_path}"


async def test_exit_ends_the_shell_and_the_next_call_gets_a_new_one(bash):
    out = await run(bash, "echo bye; exit 4")
    assert "bye" in out.content and "the shell exited (exit code 4)" in out.content
    assert (await run(bash, "echo back")).content == "back"


async def test_cancellation_kills_the_process_group(bash, tmp_path):
    task = asyncio.create_task(run(bash, "echo $$ > shell.pid; sleep 60 & echo $! > bg.pid; wait"))
    for _ in range(100):
        if (tmp_path / "bg.pid").exists() and (tmp_path / "bg.pid").read_text().strip():
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)
    assert not alive(int((tmp_path / "bg.pid").read_text()))
    assert not alive(int((tmp_path / "shell.pid").read_text()))
    assert (await run(bash, "echo alive")).content == "alive"


async def test_aclose_kills_every_shell(tmp_path):
    tool = BashTool(Workspace(tmp_path))
    pids = [int((await run(tool, "echo $$", ToolContext(f"run-{i}", "t"))).content) for i in range(2)]
    await tool.aclose()
    await asyncio.sleep(0.1)
    assert not any(alive(p) for p in pids)


async def test_command_policy(tmp_path):
    tool = BashTool(Workspace(tmp_path), policy=CommandPolicy(deny=(r"\brm\s+-rf\b", r"curl")))
    try:
        denied = await run(tool, "rm -rf /tmp/x")
        assert denied.is_error and r"\brm\s+-rf\b" in denied.content and "not run" in denied.content
        assert (await run(tool, "echo fine")).content == "fine"
    finally:
        await tool.aclose()
    allow_only = CommandPolicy(allow=(r"^(ls|cat|echo)\b",))
    assert allow_only.check("ls -la") is None
    assert "none of the allowed patterns" in allow_only.check("python -c 1")


async def test_limits_apply_to_the_shell_and_its_commands(tmp_path):
    tool = BashTool(Workspace(tmp_path), limits=Limits(file_size_mb=1, cpu_seconds=None, memory_mb=None))
    try:
        out = await run(tool, "ulimit -f; head -c 2000000 /dev/zero > big; echo status=$?")
    finally:
        await tool.aclose()
    assert out.content.startswith("1024\n")  # bash's ulimit -f counts 1024-byte blocks
    assert "status=153" in out.content  # 128 + SIGXFSZ
    assert (tmp_path / "big").stat().st_size == 2**20


async def test_missing_command(bash):
    with pytest.raises(ToolError, match="give a command"):
        await bash.call({}, CTX)


def test_ansi_c_quote_round_trips_through_bash():
    import subprocess

    text = "a'b\\c\n\t$HOME `x` \"q\" ü ✓ \x01"
    out = subprocess.run(["bash", "-c", f"printf %s {ansi_c_quote(text)}"], capture_output=True, check=True).stdout
    assert out.decode() == text


def test_bounded_buffer_keeps_head_and_tail():
    buf = BoundedBuffer(10)
    for chunk in (b"01234", b"56789", b"abcdefghij", b"XYZ"):
        buf.write(chunk)
    assert bytes(buf.head) == b"01234" and bytes(buf.tail) == b"ijXYZ"
    assert buf.dropped == 23 - 10
    text, bad = buf.text()
    assert text.startswith("01234\n[... 13 bytes of output dropped") and text.endswith("ijXYZ") and not bad


def test_bounded_buffer_does_not_flag_a_character_cut_in_half():
    buf = BoundedBuffer(6)
    buf.write("éé".encode() + b"x" * 10 + "éé".encode())  # both cuts fall inside an é
    text, bad = buf.text()
    assert not bad, text
    assert text.startswith("é\n[...") and text.endswith("]\né")
