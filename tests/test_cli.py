"""The ``tether`` command, run as a user would: real processes, a real fake API on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tether.testing.process import fake_api_process

TETHER = [sys.executable, "-m", "tether.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake_api():
    """``tether fake-api`` in its own process, answering after a 3-second first-token delay."""
    with fake_api_process("--behaviour", "echo", "--first-token-delay", "3") as url:
        yield url


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    return {**base, **extra}


def test_curl_against_tether_fake_api_shows_a_well_formed_stream(fake_api):
    body = json.dumps({"model": "claude-opus-4-8", "max_tokens": 100, "stream": True,
                       "messages": [{"role": "user", "content": "hello"}]})
    out = subprocess.run(["curl", "-sN", f"{fake_api}/v1/messages", "-H", "x-api-key: k",
                          "-H", "anthropic-version: 2023-06-01", "-H", "content-type: application/json",
                          "-d", body], capture_output=True, text=True, timeout=30, check=True).stdout
    events = [chunk.split("\n") for chunk in out.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    assert names[0] == "message_start" and names[-1] == "message_stop" and "ping" in names
    for lines in events:
        assert json.loads(lines[1].removeprefix("data: "))["type"] == lines[0].removeprefix("event: ")


def test_run_demo_prints_events_as_json_lines(tmp_path):
    out = subprocess.run([*TETHER, "run", "--demo", "--demo-turns", "4", "--json", "--workspace", str(tmp_path),
                          "build it"], capture_output=True, text=True, timeout=120, env=env())
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_end"
    assert events[-1]["outcome"] == "completed" and events[-1]["turns"] == 4
    results = [e for e in events if e["type"] == "tool_result"]
    assert results and not any(r["is_error"] for r in results)
    assert any(tmp_path.rglob("*.py")), "the simulated agent's edits reached the workspace"


def test_run_renders_a_summary_line(tmp_path):
    out = subprocess.run([*TETHER, "run", "--demo", "--demo-turns", "3", "--workspace", str(tmp_path), "go"],
                         capture_output=True, text=True, timeout=120, env=env(COLUMNS="100"))
    assert out.returncode == 0, out.stderr
    assert "completed · 3 turns" in out.stdout and "cache hit" in out.stdout and "$" in out.stdout


def test_a_demo_run_without_a_workspace_says_where_it_made_one():
    out = subprocess.run([*TETHER, "run", "--demo", "--demo-turns", "3", "go"], capture_output=True, text=True,
                         timeout=120, env=env())
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stderr.splitlines() if line.startswith("workspace "))
    workspace = Path(line.split()[1])
    try:
        assert any(workspace.rglob("*.py")), "the agent's files are in the workspace it names"
    finally:
        shutil.rmtree(workspace)


def test_without_a_key_the_error_says_how_to_fix_it():
    out = subprocess.run([*TETHER, "run", "hi"], capture_output=True, text=True, timeout=60, env=env())
    assert out.returncode == 2
    assert "ANTHROPIC_API_KEY" in out.stderr and "tether.toml" in out.stderr


def test_a_bad_setting_is_a_clear_error():
    out = subprocess.run([*TETHER, "run", "--demo", "hi"], capture_output=True, text=True, timeout=60,
                         env=env(ENABLE_STREAMING="perhaps"))
    assert out.returncode == 2 and "output.streaming must be true or false" in out.stderr


def test_chat_commands_and_ctrl_c_interrupts_the_turn_not_the_program(fake_api, tmp_path):
    saved = tmp_path / "chat.json"
    chat = subprocess.Popen([*TETHER, "chat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=env(ANTHROPIC_API_KEY="k", ANTHROPIC_BASE_URL=fake_api, COLUMNS="200"))
    banner = chat.stdout.readline()
    assert "tether chat with claude-opus-4-8, session ses_" in banner, chat.stderr.read()
    chat.stdin.write("first question\n")
    chat.stdin.flush()
    time.sleep(1.5)  # the fake waits 3 s before answering: the turn is in flight
    chat.send_signal(signal.SIGINT)
    time.sleep(0.5)
    chat.stdin.write(f"/cost\n/save {saved}\n/model claude-sonnet-4-6\n/exit\n")
    chat.stdin.flush()
    out, err = chat.communicate(timeout=60)
    assert chat.returncode == 0, err
    assert "interrupted" in out
    assert "model is now claude-sonnet-4-6" in out
    messages = json.loads(saved.read_text())
    assert [m["role"] for m in messages] == ["user"]  # the interrupted turn left a valid conversation


def test_runs_are_sessions_that_can_be_listed_shown_exported_forked_and_resumed(tmp_path):
    run = subprocess.run([*TETHER, "run", "--demo", "--demo-turns", "2", "--workspace", str(tmp_path / "w"),
                          "--tag", "demo", "--json", "first task"], capture_output=True, text=True, timeout=120,
                         env=env())
    assert run.returncode == 0, run.stderr
    session = run.stderr.strip().splitlines()[-1].removeprefix("session ")
    listed = subprocess.run([*TETHER, "sessions", "list", "--tag", "demo"], capture_output=True, text=True,
                            timeout=60, env=env(COLUMNS="200"))
    assert session in listed.stdout and "completed" in listed.stdout
    shown = subprocess.run([*TETHER, "sessions", "show", session], capture_output=True, text=True, timeout=60,
                           env=env(COLUMNS="200"))
    assert "first task" in shown.stdout and "2 turns" in shown.stdout
    exported = tmp_path / "s.json"
    subprocess.run([*TETHER, "sessions", "export", session, "--out", str(exported)], check=True, timeout=60,
                   env=env())
    imported = subprocess.run([*TETHER, "sessions", "import", str(exported)], capture_output=True, text=True,
                              check=True, timeout=60, env=env()).stdout.strip()
    assert imported.startswith("ses_") and imported != session
    forked = subprocess.run([*TETHER, "sessions", "fork", session, "--at", "2"], capture_output=True, text=True,
                            check=True, timeout=60, env=env()).stdout.strip()
    more = subprocess.run([*TETHER, "run", "--demo", "--demo-turns", "4", "--workspace", str(tmp_path / "w"),
                           "--resume", forked, "--json", "go on"], capture_output=True, text=True, timeout=120,
                          env=env())
    assert more.returncode == 0, more.stderr
    assert json.loads(more.stdout.splitlines()[-1])["outcome"] == "completed"
    markdown = subprocess.run([*TETHER, "sessions", "export", forked, "--format", "markdown"], capture_output=True,
                              text=True, check=True, timeout=60, env=env()).stdout
    assert "first task" in markdown and "go on" in markdown
    deleted = subprocess.run([*TETHER, "sessions", "delete", imported], capture_output=True, text=True,
                             timeout=60, env=env())
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    missing = subprocess.run([*TETHER, "sessions", "show", imported], capture_output=True, text=True,
                             timeout=60, env=env())
    assert missing.returncode == 2 and "no session" in missing.stderr


def test_audit_verify(tmp_path):
    log = tmp_path / "audit.jsonl"
    run = subprocess.run([*TETHER, "run", "--demo", "--demo-turns", "3", "--workspace", str(tmp_path / "w"),
                          "--audit", str(log), "--json", "go"], capture_output=True, text=True, timeout=120,
                         env=env())
    assert run.returncode == 0, run.stderr
    ok = subprocess.run([*TETHER, "audit", "verify", str(log)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout
    lines = log.read_text().splitlines()
    assert len(lines) >= 2
    Path(log).write_text("\n".join([lines[0].replace('"bash"', '"rm"', 1), *lines[1:]]) + "\n")
    bad = subprocess.run([*TETHER, "audit", "verify", str(log)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "line 1" in bad.stdout


def test_commands_run_on_uvloop():
    uvloop = pytest.importorskip("uvloop")
    import asyncio

    from tether.cli.aio import run

    async def loop_type() -> type:
        return type(asyncio.get_running_loop())

    assert issubclass(run(loop_type()), uvloop.Loop)


def test_serve_demo_needs_no_key_and_runs_a_task_end_to_end():
    port = free_port()
    serve = subprocess.Popen([*TETHER, "serve", "--demo", "--port", str(port)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, env=env())
    try:
        assert "sign in with this token" in serve.stdout.readline()
        token = serve.stdout.readline().strip()
        assert token.startswith("tth_")
        import httpx2

        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx2.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx2.get(f"{base}/", headers={}).status_code == 200, "the page is where a newcomer starts"
        started = httpx2.post(f"{base}/v1/runs", json={"task": "fix it", "tools": ["bash", "editor"]}, headers=auth)
        assert started.status_code == 202, started.text
        run = started.json()["id"]
        while (status := httpx2.get(f"{base}/v1/runs/{run}", headers=auth).json())["status"] not in (
                "completed", "failed", "cancelled"):
            assert time.monotonic() < deadline + 60, status
            time.sleep(0.2)
        assert status["status"] == "completed" and status["turns"] == 8
    finally:
        serve.terminate()
        serve.wait(30)
