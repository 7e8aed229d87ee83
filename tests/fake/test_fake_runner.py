"""Running the fake: startup time, clean shutdown, the request log, ``serve`` in the foreground."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import anthropic
import httpx2
import pytest

import tether.testing
from tether.testing import FakeAPI

MODEL = "claude-opus-4-8"
USER = [{"role": "user", "content": "hi"}]


def test_starts_fast_and_stops_cleanly():
    started = time.perf_counter()
    fake = FakeAPI().start()
    assert time.perf_counter() - started < 0.5
    url = fake.base_url
    with anthropic.Anthropic(base_url=url, api_key="k") as client:
        assert client.messages.create(model=MODEL, max_tokens=10, messages=USER).content
    fake.stop()
    assert not any(t.name == "tether-fake-api" and t.is_alive() for t in threading.enumerate())
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as probe:
        assert probe.connect_ex((host, int(port))) != 0
    with pytest.raises(RuntimeError):
        _ = fake.base_url


def test_stopping_with_a_stalled_stream_open_is_prompt():
    from tether.testing import Stall

    fake = FakeAPI().start()
    fake.fail_next(Stall(seconds=60, after_events=2))
    client = httpx2.Client(base_url=fake.base_url, timeout=30)
    headers = {"x-api-key": "k", "anthropic-version": "2026-10-21"}
    body = {"model": MODEL, "max_tokens": 10, "messages": USER, "stream": True}
    with client.stream("POST", "/v1/messages", headers=headers, json=body) as response:
        assert response.status_code == 200
        started = time.perf_counter()
        fake.stop()
        assert time.perf_counter() - started < 2
    client.close()


async def test_async_context_manager():
    async with FakeAPI() as fake:
        client = anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="k")
        fake.script(["async"])
        assert (await client.messages.create(model=MODEL, max_tokens=10, messages=USER)).content[
            0
        ].text == "async"


def test_the_request_log_keeps_exact_bytes_and_headers(fake: FakeAPI, key, http):
    raw = b'{"model": "claude-opus-4-8", "max_tokens": 5, "messages": [{"role": "user", "content": "exact"}]}'
    http.post(
        "/v1/messages?x=1",
        content=raw,
        headers={"x-api-key": key, "anthropic-version": "2023-06-01", "X-Custom": "yes"},
    )
    record = fake.last_request(key)
    assert record.body == raw and record.json()["messages"][0]["content"] == "exact"
    assert record.method == "POST" and record.path == "/v1/messages" and record.query == "x=1"
    assert record.header("x-custom") == "yes" and record.status == 200
    assert record.request_id.startswith("req_")


def test_the_request_log_is_bounded():
    with FakeAPI(record_limit=3) as fake, anthropic.Anthropic(base_url=fake.base_url, api_key="k") as client:
        for _ in range(5):
            client.messages.create(model=MODEL, max_tokens=5, messages=USER)
        assert len(fake.requests) == 3


def test_serve_runs_in_the_foreground():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "from tether.testing.fake.server import serve\n"
        f"serve('127.0.0.1', {port}, behaviour='coding-agent', agent_turns=3, log_level='warning')\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="k", max_retries=0)
        deadline = time.monotonic() + 20
        while True:
            try:
                models = client.models.list()
                break
            except anthropic.APIConnectionError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.05)
        assert models.data
        reply = client.messages.create(
            model=MODEL, max_tokens=4000, messages=USER, tools=[{"type": "bash_20250124", "name": "bash"}]
        )
        assert reply.stop_reason == "tool_use" and reply.content[-1].name == "bash"
    finally:
        process.terminate()
        process.wait(10)


def test_the_public_surface_is_sorted_and_complete():
    assert tether.testing.__all__ == sorted(tether.testing.__all__)
    assert all(hasattr(tether.testing, name) for name in tether.testing.__all__)
