"""Sessions and usage over HTTP: search, read, fork, export, delete; dollars by model, day, tenant."""

from __future__ import annotations

import datetime as dt
import json

from server_helpers import bearer, until


async def _two_runs(h, token: str) -> list[dict]:
    runs = []
    for body in ({"task": "alpha needle task", "tags": ["red"]}, {"task": "beta task"}):  # one after the other
        runs.append(await h.run(token, **body))
        await h.settled(runs[-1]["id"])
    return runs


async def test_sessions_are_listed_searched_and_filtered(harness):
    token = await harness.token()
    alpha, beta = await _two_runs(harness, token)
    get = harness.client.get

    async def ids(query: str) -> list[str]:
        response = await get(f"/v1/sessions{query}", headers=bearer(token))
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()["sessions"]]

    assert await ids("") == [beta["session_id"], alpha["session_id"]]
    assert await ids("?search=needle") == [alpha["session_id"]]
    assert await ids("?tag=red") == [alpha["session_id"]]
    assert await ids("?status=completed&limit=1") == [beta["session_id"]]
    assert await ids("?limit=1&offset=1") == [alpha["session_id"]]
    assert await ids("?status=failed") == []
    for bad in ("?limit=0", "?limit=x", "?offset=-1", "?status=done"):
        response = await get(f"/v1/sessions{bad}", headers=bearer(token))
        assert response.status_code == 400 and response.json()["error"]["category"] == "validation_error", bad


async def test_a_session_is_read_forked_and_exported(harness):
    token = await harness.token()
    run = await harness.run(token, task="fork me")
    await harness.settled(run["id"])
    await harness.client.post(f"/v1/runs/{run['id']}/messages", json={"text": "and more"}, headers=bearer(token))
    await harness.settled(run["id"])
    sid = run["session_id"]
    detail = (await harness.client.get(f"/v1/sessions/{sid}", headers=bearer(token))).json()
    assert len(detail["messages"]) == 4 and detail["run_id"] == run["id"] and detail["turns"] == 2

    fork = await harness.client.post(f"/v1/sessions/{sid}/fork", json={"at": 2}, headers=bearer(token))
    assert fork.status_code == 201 and fork.json()["parent_id"] == sid and fork.json()["fork_seq"] == 2
    forked = (await harness.client.get(f"/v1/sessions/{fork.json()['id']}", headers=bearer(token))).json()
    assert [m["content"] for m in forked["messages"]] == [m["content"] for m in detail["messages"][:2]]
    whole = await harness.client.post(f"/v1/sessions/{sid}/fork", headers=bearer(token))
    assert whole.status_code == 201
    too_far = await harness.client.post(f"/v1/sessions/{sid}/fork", json={"at": 99}, headers=bearer(token))
    assert too_far.status_code == 409 and "has 4 messages" in too_far.json()["error"]["message"]

    exported = await harness.client.get(f"/v1/sessions/{sid}/export", headers=bearer(token))
    assert exported.headers["content-type"].startswith("application/json")
    assert json.loads(exported.text)["session"]["id"] == sid
    markdown = await harness.client.get(f"/v1/sessions/{sid}/export?format=markdown", headers=bearer(token))
    assert markdown.headers["content-type"].startswith("text/markdown") and "## assistant" in markdown.text
    assert (await harness.client.get(f"/v1/sessions/{sid}/export?format=pdf", headers=bearer(token))).status_code == 400


async def test_deleting_a_session_needs_admin_and_a_resting_run(gated):
    h = gated
    runner, admin = await h.token("read,run"), await h.token("admin")
    run = await h.run(runner, task="delete me", tools=["bash"])
    await until(lambda: h.gate.waiting == 1, "the held model call")
    sid = run["session_id"]
    assert (await h.client.delete(f"/v1/sessions/{sid}", headers=bearer(runner))).status_code == 403
    busy = await h.client.delete(f"/v1/sessions/{sid}", headers=bearer(admin))
    assert busy.status_code == 409
    h.gate.open(5)
    await h.settled(run["id"])
    workspace = h.service.manager.workspace(sid)
    assert workspace.is_dir()
    gone = await h.client.delete(f"/v1/sessions/{sid}", headers=bearer(admin))
    assert gone.status_code == 204 and not workspace.exists()
    assert (await h.client.get(f"/v1/sessions/{sid}", headers=bearer(admin))).status_code == 404
    assert (await h.client.get(f"/v1/runs/{run['id']}", headers=bearer(admin))).status_code == 404
    assert (await h.client.delete(f"/v1/sessions/{sid}", headers=bearer(admin))).status_code == 404


async def test_usage_adds_up_dollars_and_tokens_by_model_day_and_tenant(harness):
    a, b = await harness.token("read,run", "team-a"), await harness.token("read,run", "team-b")
    admin = await harness.token("admin", "ops")
    first_day = dt.datetime.now(dt.UTC).date().isoformat()
    for token in (a, a, b):
        await harness.settled((await harness.run(token, task="count me"))["id"])

    async def usage(by: str, token: str = admin) -> dict:
        response = await harness.client.get(f"/v1/usage?by={by}", headers=bearer(token))
        assert response.status_code == 200, response.text
        return response.json()

    by_tenant = await usage("tenant")
    assert [(r["key"], r["turns"]) for r in by_tenant["rows"]] == [("team-a", 2), ("team-b", 1)]
    assert by_tenant["total"]["turns"] == 3 and by_tenant["total"]["dollars"] > 0
    assert by_tenant["rows"][0]["dollars"] == 2 * by_tenant["rows"][1]["dollars"]
    by_model = await usage("model")
    assert [(r["key"], r["turns"]) for r in by_model["rows"]] == [("claude-opus-4-8", 3)]
    by_day = await usage("day")
    days = {first_day, dt.datetime.now(dt.UTC).date().isoformat()}  # the test may run across midnight
    assert {r["key"] for r in by_day["rows"]} <= days and sum(r["turns"] for r in by_day["rows"]) == 3
    mine = await usage("tenant", a)
    assert [(r["key"], r["turns"]) for r in mine["rows"]] == [("team-a", 2)]
    assert (await harness.client.get("/v1/usage?by=week", headers=bearer(admin))).status_code == 400
