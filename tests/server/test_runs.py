"""Runs over HTTP, in process: start, follow up, interrupt, cancel, approve; tenants; bad requests."""

from __future__ import annotations

from server_helpers import bearer, until

from tether.testing import Turn, text, tool_use


async def test_a_run_starts_completes_and_reports_what_it_spent(harness):
    token = await harness.token()
    accepted = await harness.run(token, task="hello there", title="greeting", tags=["demo"])
    assert set(accepted) == {"id", "session_id", "status"} and accepted["status"] == "queued"
    run = await harness.settled(accepted["id"])
    assert run["status"] == "completed" and run["tenant"] == "team-a" and run["model"] == "claude-opus-4-8"
    assert run["outcome"]["outcome"] == "completed" and run["outcome"]["text"] == "hello there"
    assert run["turns"] == 1 and run["tokens"]["input"] > 0 and run["tokens"]["output"] > 0 and run["dollars"] > 0
    got = (await harness.client.get(f"/v1/runs/{accepted['id']}", headers=bearer(token))).json()
    assert got["status"] == "completed" and got["session_id"] == accepted["session_id"]
    session = (await harness.client.get(f"/v1/sessions/{accepted['session_id']}", headers=bearer(token))).json()
    assert session["title"] == "greeting" and session["tags"] == ["demo"] and session["tenant"] == "team-a"
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"]
    listed = (await harness.client.get("/v1/runs", headers=bearer(token))).json()["runs"]
    assert [r["id"] for r in listed] == [accepted["id"]]
    assert got["task"] == listed[0]["task"] == "hello there" and listed[0] == got


async def test_a_follow_up_continues_the_same_run_and_session(harness):
    token = await harness.token()
    run = await harness.run(token, task="first question")
    await harness.settled(run["id"])
    answer = await harness.client.post(f"/v1/runs/{run['id']}/messages", json={"text": "second question"},
                                       headers=bearer(token))
    assert answer.status_code == 202 and answer.json()["id"] == run["id"]
    done = await harness.settled(run["id"])
    assert done["status"] == "completed" and done["outcome"]["text"] == "second question" and done["turns"] == 2
    messages = (await harness.client.get(f"/v1/sessions/{run['session_id']}", headers=bearer(token))).json()
    texts = [block["text"] for m in messages["messages"] for block in m["content"]]
    assert texts == ["first question", "first question", "second question", "second question"]


async def test_interrupt_stops_the_turn_and_the_run_takes_a_follow_up(gated):
    h = gated
    token = await h.token()
    run = await h.run(token, task="a long job")
    await until(lambda: h.gate.waiting == 1, "the model call to be held")
    busy = await h.client.post(f"/v1/runs/{run['id']}/messages", json={"text": "more"}, headers=bearer(token))
    assert busy.status_code == 409 and busy.json()["error"]["category"] == "validation_error"
    stopped = await h.client.post(f"/v1/runs/{run['id']}/interrupt", headers=bearer(token))
    assert stopped.status_code == 200 and stopped.json()["status"] == "idle"
    info = await h.service.store.get(run["session_id"])
    assert info.status == "interrupted"
    h.gate.open(10)
    again = await h.client.post(f"/v1/runs/{run['id']}/messages", json={"text": "now something short"},
                                headers=bearer(token))
    assert again.status_code == 202
    done = await h.settled(run["id"])
    assert done["status"] == "completed"
    roles = [m.role for m in await h.service.store.messages(run["session_id"])]
    assert roles[0] == "user" and roles[-1] == "assistant"


async def test_cancel_ends_the_run_for_good(gated):
    h = gated
    token = await h.token()
    run = await h.run(token, task="cancel me")
    await until(lambda: h.gate.waiting == 1, "the model call to be held")
    cancelled = await h.client.post(f"/v1/runs/{run['id']}/cancel", headers=bearer(token))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["outcome"]["outcome"] == "cancelled"
    refused = await h.client.post(f"/v1/runs/{run['id']}/messages", json={"text": "hello?"}, headers=bearer(token))
    assert refused.status_code == 409
    # its session is free again: a new run can continue it
    h.gate.open(10)
    follow = await h.run(token, task="pick it up", session_id=run["session_id"])
    assert follow["session_id"] == run["session_id"] and follow["id"] != run["id"]
    assert (await h.settled(follow["id"]))["status"] == "completed"
    listed = {r["id"]: r["task"] for r in (await h.client.get("/v1/runs", headers=bearer(token))).json()["runs"]}
    assert listed == {run["id"]: "cancel me", follow["id"]: "pick it up"}


async def test_a_tool_in_ask_mode_waits_for_an_approval(harness, fake, key):
    fake.script([Turn([tool_use("bash", {"command": "echo approved-$((40+2))"})]), "ran it",
                 Turn([tool_use("bash", {"command": "echo again"})]), "did not run it"], key=key)
    token = await harness.token()
    run = await harness.run(token, task="run a command", tools=["bash"], permissions={"bash": "ask"})
    await harness.settled(run["id"], "waiting_approval")
    pending = (await harness.client.get(f"/v1/runs/{run['id']}/approvals", headers=bearer(token))).json()
    [approval] = pending["approvals"]
    assert approval["name"] == "bash" and approval["input"] == {"command": "echo approved-$((40+2))"}
    missing = await harness.client.post(f"/v1/runs/{run['id']}/approvals/toolu_nope", json={"decision": "yes"},
                                        headers=bearer(token))
    assert missing.status_code == 404 and missing.json()["error"]["category"] == "not_found"
    bad = await harness.client.post(f"/v1/runs/{run['id']}/approvals/{approval['tool_use_id']}",
                                    json={"decision": "maybe"}, headers=bearer(token))
    assert bad.status_code == 400
    yes = await harness.client.post(f"/v1/runs/{run['id']}/approvals/{approval['tool_use_id']}",
                                    json={"decision": "yes"}, headers=bearer(token))
    assert yes.status_code == 200 and yes.json()["decision"] == "yes"
    done = await harness.settled(run["id"])
    assert done["status"] == "completed" and done["pending_approvals"] == []
    results = [b for m in await harness.service.store.messages(run["session_id"]) for b in m.content
               if b["type"] == "tool_result"]
    assert "approved-42" in str(results[0]["content"]) and not results[0].get("is_error")

    await harness.client.post(f"/v1/runs/{run['id']}/messages", json={"text": "once more"}, headers=bearer(token))
    await harness.settled(run["id"], "waiting_approval")
    [approval] = harness.service.manager.get(run["id"]).approvals.values()
    await harness.client.post(f"/v1/runs/{run['id']}/approvals/{approval.tool_use_id}", json={"decision": "no"},
                              headers=bearer(token))
    await harness.settled(run["id"])
    results = [b for m in await harness.service.store.messages(run["session_id"]) for b in m.content
               if b["type"] == "tool_result"]
    assert results[-1]["is_error"] and "denied" in str(results[-1]["content"])
    events = (await harness.client.get(f"/v1/runs/{run['id']}/events", headers=bearer(token))).text
    assert events.count("event: approval_requested") == 2 and events.count("event: approval_resolved") == 2
    assert "event: run_status\ndata: {\"status\":\"waiting_approval\"" in events


async def test_runs_of_another_tenant_do_not_exist_for_a_token(harness):
    mine, theirs = await harness.token("read,run", "team-a"), await harness.token("read,run", "team-b")
    admin = await harness.token("admin", "ops")
    run = await harness.run(mine, task="private")
    await harness.settled(run["id"])
    for path in (f"/v1/runs/{run['id']}", f"/v1/runs/{run['id']}/events", f"/v1/sessions/{run['session_id']}"):
        response = await harness.client.get(path, headers=bearer(theirs))
        assert response.status_code == 404, path
    assert (await harness.client.post(f"/v1/runs/{run['id']}/cancel", headers=bearer(theirs))).status_code == 404
    assert (await harness.client.get("/v1/runs", headers=bearer(theirs))).json()["runs"] == []
    assert (await harness.client.get("/v1/sessions", headers=bearer(theirs))).json()["sessions"] == []
    assert [r["id"] for r in (await harness.client.get("/v1/runs", headers=bearer(admin))).json()["runs"]] == [run["id"]]
    assert (await harness.client.get(f"/v1/runs/{run['id']}", headers=bearer(admin))).status_code == 200


async def test_bad_requests_get_validation_errors_that_name_the_problem(harness):
    token = await harness.token()
    cases = [
        ({"task": "x", "model": "claude-nonesuch-9"}, 400, "unknown model"),
        ({"task": "x", "colour": "blue"}, 400, "colour"),
        ({}, 400, "give a task"),
        ({"task": "x", "tools": ["rm -rf"]}, 400, "tools.0"),
        ({"task": "x", "limits": {"max_turns": 0}}, 400, "limits.max_turns"),
        ({"task": "x", "permissions": {"bash": "sometimes"}}, 400, "permissions"),
        ({"session_id": "ses_nope"}, 404, "ses_nope"),
    ]
    for body, status, words in cases:
        response = await harness.client.post("/v1/runs", json=body, headers=bearer(token))
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert words in error["message"] and error["request_id"] == response.headers["x-request-id"]
    not_json = await harness.client.post("/v1/runs", content=b"{nope", headers=bearer(token))
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
    huge = await harness.client.post("/v1/runs", content=b'{"task": "' + b"x" * (2 << 20) + b'"}',
                                     headers=bearer(token))
    assert huge.status_code == 413 and huge.json()["error"]["category"] == "validation_error"
    unknown = await harness.client.get("/v1/runs/run_nope", headers=bearer(token))
    assert unknown.status_code == 404 and unknown.json()["error"]["category"] == "not_found"


async def test_a_session_held_by_a_run_cannot_be_taken_by_another(harness):
    token = await harness.token()
    run = await harness.run(token, task="mine")
    await harness.settled(run["id"])
    clash = await harness.client.post("/v1/runs", json={"task": "also mine", "session_id": run["session_id"]},
                                      headers=bearer(token))
    assert clash.status_code == 409 and run["id"] in clash.json()["error"]["message"]


async def test_a_failed_run_says_why_and_takes_a_follow_up(harness, fake, key):
    from tether.testing import ErrorResponse

    fake.script([ErrorResponse(400, "invalid_request_error", "prompt is too long")], key=key)
    token = await harness.token()
    run = await harness.run(token, task="this fails")
    failed = await harness.settled(run["id"])
    assert failed["status"] == "failed" and failed["outcome"]["outcome"] == "api_error"
    assert "prompt is too long" in failed["outcome"]["error"]
    fake.script([text("recovered")], key=key)
    await harness.client.post(f"/v1/runs/{run['id']}/messages", json={"text": "try again"}, headers=bearer(token))
    assert (await harness.settled(run["id"]))["status"] == "completed"
