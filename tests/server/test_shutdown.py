"""``tether serve`` as a user runs it: its checks at start, SIGTERM mid-run, and the resume at the
next start. The model is ``tether fake-api`` in a process of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from server_helpers import TETHER, bearer, free_port, sse_frames, wait_for_port

from tether.store.sql import open_store

TASK = " ".join(f"step{i}" for i in range(40))
LONG_TASK = " ".join(f"step{i}" for i in range(200))  # echoed at 30 ms a word: a run of about six seconds


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TETHER_"))}
    return {**base, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"), **extra}


def config(tmp_path: Path, port: int, **server: object) -> Path:
    path = tmp_path / "tether.toml"
    lines = ["[store]", f'url = "{tmp_path / "sessions.db"}"', "[server]", f"port = {port}"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in server.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def slow_fake_api() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([*TETHER, "fake-api", "--port", str(port), "--behaviour", "echo",
                                "--token-delay", "0.03"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, process)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


class Serve:
    """``tether serve`` in a process, its log in a file."""

    def __init__(self, tmp_path: Path, toml: Path, port: int, environ: dict[str, str], name: str, *args: str) -> None:
        self.log = tmp_path / f"{name}.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen([*TETHER, "serve", "--config", str(toml), *args], env=environ,
                                            stdout=out, stderr=subprocess.STDOUT)
        wait_for_port(port, self.process)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


def make_token(toml: Path, environ: dict[str, str], scopes: str = "read,run") -> str:
    out = subprocess.run([*TETHER, "tokens", "create", "--config", str(toml), "--name", "test", "--scopes", scopes,
                          "--tenant", "team-a"], env=environ, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def start_and_watch(url: str, token: str, task: str) -> tuple[dict, str]:
    """Start a run and read its events until five text deltas came: the run, and the last event id read."""
    run = httpx2.post(f"{url}/v1/runs", json={"task": task}, headers=bearer(token)).json()
    seen = []
    with httpx2.stream("GET", f"{url}/v1/runs/{run['id']}/events", headers=bearer(token), timeout=30) as response:
        for frame in sse_frames(response):
            seen.append(frame)
            if sum(f.get("event") == "text_delta" for f in seen) == 5:
                break
    return run, seen[-1]["id"]


def events_after(url: str, token: str, run_id: str, last: str) -> tuple[list[dict], int]:
    """The events after ``last`` to the run's end (not the keep-alive comments), their ids checked to
    follow on, and how many the stream said were missed (its ``gap``: what a stopped process sent)."""
    with httpx2.stream("GET", f"{url}/v1/runs/{run_id}/events", timeout=30,
                       headers={**bearer(token), "Last-Event-ID": last}) as response:
        after = [frame for frame in sse_frames(response) if "event" in frame]
    missed = after.pop(0)["data"]["missed"] if after[0]["event"] == "gap" else 0
    ids = [int(f["id"]) for f in after if "id" in f]
    assert ids == list(range(int(last) + 1 + missed, int(last) + 1 + missed + len(ids)))
    return after, missed


def assert_finished(url: str, token: str, after: list[dict], session_id: str, task: str) -> None:
    assert after[-1]["data"]["status"] == "completed" and after[-1]["data"]["outcome"]["text"] == task
    session = httpx2.get(f"{url}/v1/sessions/{session_id}", headers=bearer(token)).json()
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"]
    assert session["status"] == "completed"


async def test_sigterm_leaves_the_run_resumable_and_the_next_start_finishes_it(tmp_path, slow_fake_api):
    port = free_port()
    toml = config(tmp_path, port)
    environ = env(tmp_path, ANTHROPIC_API_KEY="sk-ant-shutdown-test", ANTHROPIC_BASE_URL=slow_fake_api)
    token = make_token(toml, environ)
    url = f"http://127.0.0.1:{port}"

    first = Serve(tmp_path, toml, port, environ, "first")
    run, last = start_and_watch(url, token, TASK)
    assert first.stop() in (0, -signal.SIGTERM)
    assert "resume when the service starts again" in first.log.read_text()

    store = await open_store(str(tmp_path / "sessions.db"))
    try:
        info = await store.get(run["session_id"])
        assert info.status == "interrupted" and info.metadata["service"]["state"] == "resume"
        assert info.metadata["service"]["config"]["tenant"] == "team-a"
    finally:
        await store.close()

    second = Serve(tmp_path, toml, port, environ, "second")
    try:
        # what the first process sent after `last`, if anything, is gone with it: the stream says so
        after, _ = events_after(url, token, run["id"], last)
        assert_finished(url, token, after, run["session_id"], TASK)
        got = httpx2.get(f"{url}/v1/runs/{run['id']}", headers=bearer(token)).json()
        assert got["status"] == "completed" and got["session_id"] == run["session_id"] and got["task"] == TASK
    finally:
        assert second.stop() in (0, -signal.SIGTERM)
    assert "resumed 1 run(s)" in second.log.read_text()


async def test_a_killed_services_run_is_finished_by_the_next_start_on_the_host_not_by_a_live_neighbour(
        tmp_path, slow_fake_api):
    port, other = free_port(), free_port()
    toml = config(tmp_path, port)
    environ = env(tmp_path, ANTHROPIC_API_KEY="sk-ant-kill-test", ANTHROPIC_BASE_URL=slow_fake_api)
    token = make_token(toml, environ)
    url = f"http://127.0.0.1:{port}"

    first = Serve(tmp_path, toml, port, environ, "first")
    run, last = start_and_watch(url, token, LONG_TASK)
    # A second service on the same store while the first is alive leaves the first one's run alone.
    neighbour = Serve(tmp_path, toml, other, environ, "neighbour", "--port", str(other))
    try:
        assert httpx2.get(f"http://127.0.0.1:{other}/v1/runs/{run['id']}", headers=bearer(token)).status_code == 404
    finally:
        assert neighbour.stop() in (0, -signal.SIGTERM)
    first.process.kill()
    first.process.wait(10)

    store = await open_store(str(tmp_path / "sessions.db"))
    try:
        record = (await store.get(run["session_id"])).metadata["service"]
        assert (record["state"], record["owner"]["pid"]) == ("submitted", first.process.pid)
    finally:
        await store.close()

    second = Serve(tmp_path, toml, port, environ, "second")
    try:
        after, missed = events_after(url, token, run["id"], last)
        assert missed > 0, "what the killed process sent after `last` is unknown: the stream says so with a gap"
        assert_finished(url, token, after, run["session_id"], LONG_TASK)
    finally:
        assert second.stop() in (0, -signal.SIGTERM)
    assert "1 of a process that ended without one" in second.log.read_text()
    assert "resumed" not in neighbour.log.read_text()


def test_serve_refuses_a_configuration_with_problems_and_says_what_to_change(tmp_path):
    toml = config(tmp_path, free_port(), auth=False, debug=True)
    result = subprocess.run([*TETHER, "serve", "--config", str(toml), "--profile", "prod"], env=env(tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "no Anthropic API key" in result.stderr
    assert "server.auth = true" in result.stderr and "server.debug = false" in result.stderr
    staging = subprocess.run([*TETHER, "serve", "--config", str(toml), "--profile", "staging"],
                             env=env(tmp_path, ANTHROPIC_API_KEY="sk-ant-x"), capture_output=True, text=True,
                             timeout=60)
    assert staging.returncode == 2 and "only the dev profile may turn it off" in staging.stderr


def test_tokens_cli_makes_lists_and_revokes(tmp_path):
    toml = config(tmp_path, free_port())
    environ = env(tmp_path)
    token = make_token(toml, environ, "read,admin")
    assert token.startswith("tth_") and len(token.split("_", 2)[2]) >= 40
    token_id = token.split("_")[1]
    revoked = subprocess.run([*TETHER, "tokens", "revoke", token_id, "--config", str(toml)], env=environ,
                             capture_output=True, text=True)
    assert revoked.returncode == 0 and f"revoked {token_id}" in revoked.stdout, revoked.stderr
    listed = subprocess.run([*TETHER, "tokens", "--config", str(toml), "list"], env=environ, capture_output=True,
                            text=True, check=True).stdout
    [line] = [line for line in listed.splitlines() if token_id in line]
    assert "read,admin" in line and "team-a" in line and line.count("-") >= 5  # created and revoked dates
    assert token.split("_", 2)[2] not in listed
    unknown = subprocess.run([*TETHER, "tokens", "revoke", "ffffffffffffffff", "--config", str(toml)], env=environ,
                             capture_output=True, text=True)
    assert unknown.returncode != 0 and "no token" in unknown.stderr
