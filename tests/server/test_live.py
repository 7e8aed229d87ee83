"""Against a real uvicorn on loopback: what only a socket shows (live streaming, reconnects,
clients that go away)."""

from __future__ import annotations

import asyncio
import time

import httpx2
import pytest
from server_helpers import LiveService, bearer, settings_for, sse_frames

from tether import AnthropicClient
from tether.server.app import create_app
from tether.server.service import ServiceOptions

TASK = " ".join(f"word{i}" for i in range(60))


@pytest.fixture
def live(fake, key, tmp_path):
    fake.set_latency(0.0, 0.01, key=key)  # each streamed token takes 10 ms: a run lasts about a second
    base = AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=0)
    app = create_app(settings_for(fake, key, tmp_path), ServiceOptions(workspaces=tmp_path / "w", heartbeat=0.2),
                     base=base)
    with LiveService(app, close=base.aclose) as service, httpx2.Client(base_url=service.url, timeout=30) as client:
        service.client = client
        service.token = _token(service)
        yield service


def _token(service: LiveService) -> str:
    future = asyncio.run_coroutine_threadsafe(service.service.tokens.create("live", "read,run,admin", "team-a"),
                                              service.loop)
    return future.result(10)[1]


def _start(live: LiveService) -> dict:
    response = live.client.post("/v1/runs", json={"task": TASK}, headers=bearer(live.token))
    assert response.status_code == 202, response.text
    return response.json()


def test_events_arrive_while_the_run_is_still_running(live):
    run = _start(live)
    statuses_at_first_delta, frames = [], []
    with live.client.stream("GET", f"/v1/runs/{run['id']}/events", headers=bearer(live.token)) as response:
        assert response.status_code == 200
        for frame in sse_frames(response):
            frames.append(frame)
            if frame.get("event") == "text_delta" and not statuses_at_first_delta:
                statuses_at_first_delta.append(live.call(lambda: live.service.manager.get(run["id"]).status))
    assert statuses_at_first_delta == ["running"]
    events = [f for f in frames if "id" in f]
    assert [int(f["id"]) for f in events] == list(range(1, len(events) + 1))
    assert sum(f["event"] == "text_delta" for f in events) > 5
    assert events[-1]["event"] == "run_status" and events[-1]["data"]["status"] == "completed"


def test_a_reconnect_with_last_event_id_loses_and_repeats_nothing(live):
    run = _start(live)
    seen: list[dict] = []
    with live.client.stream("GET", f"/v1/runs/{run['id']}/events", headers=bearer(live.token)) as response:
        for frame in sse_frames(response):
            if "id" in frame:
                seen.append(frame)
            if len(seen) == 6:
                break  # the connection closes here, mid-run
    time.sleep(0.2)  # events go on meanwhile
    last = seen[-1]["id"]
    with live.client.stream("GET", f"/v1/runs/{run['id']}/events",
                            headers={**bearer(live.token), "Last-Event-ID": last}) as response:
        seen += [f for f in sse_frames(response) if "id" in f]
    assert [int(f["id"]) for f in seen] == list(range(1, len(seen) + 1))
    text = "".join(f["data"]["text"] for f in seen if f["event"] == "text_delta")
    assert text == TASK and seen[-1]["data"]["status"] == "completed"


def test_a_client_that_goes_away_mid_stream_is_let_go_and_the_run_goes_on(live, fake, key):
    fake.set_latency(0.0, 0.05, key=key)  # a run of 3 s: still streaming when a busy test thread reads
    run = _start(live)
    with live.client.stream("GET", f"/v1/runs/{run['id']}/events", headers=bearer(live.token)) as response:
        frames = sse_frames(response)  # held: a generator dropped at `break` would close the response now
        for frame in frames:
            if frame.get("event") == "text_delta":
                break
        assert live.call(lambda: len(live.service.streams.readers)) == 1
    deadline = time.monotonic() + 5
    while live.call(lambda: len(live.service.streams.readers)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert live.call(lambda: len(live.service.streams.readers)) == 0
    assert live.call(lambda: live.service.manager.get(run["id"]).status) == "running"
    deadline = time.monotonic() + 15
    while live.call(lambda: live.service.manager.get(run["id"]).status) == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert live.call(lambda: live.service.manager.get(run["id"]).status) == "completed"


def test_a_quiet_stream_keeps_the_connection_alive(live, fake, key):
    fake.set_latency(0.6, 0.0, key=key)  # nothing for 0.6 s: three heartbeats
    run = _start(live)
    with live.client.stream("GET", f"/v1/runs/{run['id']}/events", headers=bearer(live.token)) as response:
        frames = list(sse_frames(response))
    assert sum(f.get("comment") == "keep-alive" for f in frames) >= 2
    assert frames[-1]["data"]["status"] == "completed"
