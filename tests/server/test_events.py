"""A run's event stream, in process (whole streams; live streaming is in ``test_live``)."""

from __future__ import annotations

import asyncio
import json

from server_helpers import bearer, open_harness, until

from tether.server.eventlog import EventLog, Wake
from tether.server.service import ServiceOptions
from tether.testing import Turn, text, thinking, tool_use


def parse(body: str) -> list[dict]:
    """SSE frames as dicts of their fields (``data`` parsed); comments as ``{"comment": ...}``."""
    frames = []
    for chunk in body.split("\n\n"):
        if not chunk.strip():
            continue
        fields: dict = {}
        for line in chunk.split("\n"):
            if line.startswith(":"):
                fields["comment"] = line[1:].strip()
                continue
            name, _, value = line.partition(": ")
            fields[name] = json.loads(value) if name == "data" else value
        frames.append(fields)
    return frames


async def test_the_stream_numbers_every_event_and_ends_with_the_runs_status(harness, fake, key):
    fake.script([Turn([thinking("let me see"), text("checking"), tool_use("bash", {"command": "echo hi"})]),
                 "all done"], key=key)
    token = await harness.token()
    run = await harness.run(token, task="look around", tools=["bash"])
    await harness.settled(run["id"])
    response = await harness.client.get(f"/v1/runs/{run['id']}/events", headers=bearer(token))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    frames = parse(response.text)
    assert [int(f["id"]) for f in frames] == list(range(1, len(frames) + 1))
    kinds = [f["event"] for f in frames]
    assert kinds[:2] == ["run_status", "run_started"] and kinds[-2:] == ["run_end", "run_status"]
    assert {"thinking_delta", "text_delta", "tool_call_started", "tool_input_delta", "tool_call_finished",
            "tool_result", "usage", "turn_end"} <= set(kinds)
    for f in frames:
        assert f["data"]["type"] == f["event"]
    result = next(f["data"] for f in frames if f["event"] == "tool_result")
    assert result["name"] == "bash" and "hi" in str(result["content"]) and result["is_error"] is False
    assert frames[-1]["data"]["status"] == "completed" and frames[-1]["data"]["outcome"]["outcome"] == "completed"


async def test_last_event_id_resumes_after_it_and_a_caught_up_reader_gets_204(harness):
    token = await harness.token()
    run = await harness.run(token, task="short")
    await harness.settled(run["id"])
    whole = parse((await harness.client.get(f"/v1/runs/{run['id']}/events", headers=bearer(token))).text)
    tail = parse((await harness.client.get(f"/v1/runs/{run['id']}/events",
                                           headers={**bearer(token), "Last-Event-ID": "3"})).text)
    assert tail == whole[3:]
    by_query = parse((await harness.client.get(f"/v1/runs/{run['id']}/events?last_event_id=3",
                                               headers=bearer(token))).text)
    assert by_query == whole[3:]
    done = await harness.client.get(f"/v1/runs/{run['id']}/events",
                                    headers={**bearer(token), "Last-Event-ID": whole[-1]["id"]})
    assert done.status_code == 204
    bad = await harness.client.get(f"/v1/runs/{run['id']}/events", headers={**bearer(token), "Last-Event-ID": "x"})
    assert bad.status_code == 400


async def test_numbers_go_on_across_follow_ups(harness):
    token = await harness.token()
    run = await harness.run(token, task="one")
    await harness.settled(run["id"])
    first = parse((await harness.client.get(f"/v1/runs/{run['id']}/events", headers=bearer(token))).text)
    await harness.client.post(f"/v1/runs/{run['id']}/messages", json={"text": "two"}, headers=bearer(token))
    await harness.settled(run["id"])
    rest = parse((await harness.client.get(f"/v1/runs/{run['id']}/events",
                                           headers={**bearer(token), "Last-Event-ID": first[-1]["id"]})).text)
    assert int(rest[0]["id"]) == int(first[-1]["id"]) + 1
    assert rest[0]["data"]["status"] == "queued" and rest[-1]["data"]["status"] == "completed"
    assert next(f for f in rest if f["event"] == "run_started")["data"]["task"] == "two"


async def test_a_reader_behind_the_log_is_told_what_it_missed(fake, key, tmp_path):
    options = ServiceOptions(workspaces=tmp_path / "w", event_log_size=4)
    async with open_harness(fake, key, tmp_path, options=options) as h:
        token = await h.token()
        run = await h.run(token, task="a run with more than four events")
        await h.settled(run["id"])
        last = h.service.manager.get(run["id"]).log.last_seq
        frames = parse((await h.client.get(f"/v1/runs/{run['id']}/events", headers=bearer(token))).text)
        assert frames[0]["event"] == "gap" and "id" not in frames[0]
        assert frames[0]["data"] == {"missed": last - 4, "from": 1, "to": last - 4}
        assert [int(f["id"]) for f in frames[1:]] == list(range(last - 3, last + 1))


async def test_an_idle_stream_sends_keep_alive_comments(gated):
    h = gated
    token = await h.token()
    run = await h.run(token, task="slow")
    await until(lambda: h.gate.waiting == 1, "the held model call")
    head = await h.client.head(f"/v1/runs/{run['id']}/events", headers=bearer(token))
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/event-stream")
    reading = asyncio.create_task(h.client.get(f"/v1/runs/{run['id']}/events", headers=bearer(token)))
    await until(lambda: len(h.service.streams.readers) == 1, "the stream to open")
    await asyncio.sleep(0.5)  # more than two heartbeats (0.2 s in these tests)
    h.gate.open()
    body = (await reading).text
    assert body.count(": keep-alive") >= 2
    assert parse(body)[-1]["data"]["status"] == "completed"
    assert len(h.service.streams.readers) == 0


async def test_draining_ends_open_streams_with_a_shutdown_event(gated):
    h = gated
    token = await h.token()
    run = await h.run(token, task="slow")
    await until(lambda: h.gate.waiting == 1, "the held model call")
    reading = asyncio.create_task(h.client.get(f"/v1/runs/{run['id']}/events", headers=bearer(token)))
    await until(lambda: len(h.service.streams.readers) == 1, "the stream to open")
    h.service.drain()
    frames = parse((await reading).text)
    assert frames[-1]["event"] == "shutdown"
    refused = await h.client.post("/v1/runs", json={"task": "too late"}, headers=bearer(token))
    assert refused.status_code == 503 and refused.headers["retry-after"]
    h.gate.open(5)


def test_the_log_keeps_the_last_frames_and_counts_what_it_dropped():
    log = EventLog(3, first=10)  # a resumed run: frames 1-9 went out before the restart
    assert log.after(0) == (9, []) and log.after(9) == (0, []) and log.oldest_seq == 10
    for i in range(5):
        log.append("text_delta", json.dumps({"text": str(i)}))
    missed, frames = log.after(0)
    assert (missed, len(frames), log.last_seq, log.oldest_seq) == (11, 3, 14, 12)
    assert frames[0].startswith(b"id: 12\nevent: text_delta\ndata: ")
    assert log.after(9) == (2, frames) and log.after(11) == (0, frames)
    assert log.after(13) == (0, [frames[-1]])
    assert log.after(14) == (0, [])


async def test_a_wake_ends_the_wait_under_way_and_is_dropped_when_nobody_waits():
    log, wake = EventLog(4), Wake()
    log.listen(wake)
    log.append("text_delta", "{}")  # nobody waits: a reader looks at the log before it waits
    waiting = asyncio.ensure_future(wake.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    log.append("text_delta", "{}")
    await asyncio.wait_for(waiting, 1)
    log.unlisten(wake)
    again = asyncio.ensure_future(wake.wait())
    log.append("text_delta", "{}")
    await asyncio.sleep(0)
    assert not again.done()
    wake.set()
    await asyncio.wait_for(again, 1)
