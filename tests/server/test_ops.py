"""Health, readiness, metrics, configuration, the OpenAPI document, request ids, CORS, error bodies."""

from __future__ import annotations

import re

from server_helpers import bearer, open_harness

from tether.server.app import OPERATIONS
from tether.server.openapi import document
from tether.testing import Turn, rate_limited, tool_use


async def test_healthz_needs_nothing_and_readyz_reports_the_store_fleet_and_circuits(harness):
    token = await harness.token("read")
    health = await harness.client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = await harness.client.get("/readyz", headers=bearer(token))
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready" and body["store"] == "ok" and body["reasons"] == []
    assert body["fleet"]["concurrency"] == 32 and isinstance(body["circuits"], dict)
    harness.service.drain()
    not_ready = await harness.client.get("/readyz", headers=bearer(token))
    assert not_ready.status_code == 503 and not_ready.json()["reasons"] == ["the service is shutting down"]


async def test_readyz_is_503_when_the_store_is_gone(fake, key, tmp_path):
    async with open_harness(fake, key, tmp_path, **{"server.auth": False}) as h:
        await h.service.store.close()  # drops its connections; the next ones find a folder, not a database
        for name in ("sessions.db", "sessions.db-wal", "sessions.db-shm"):
            (tmp_path / name).unlink(missing_ok=True)
        (tmp_path / "sessions.db").mkdir()
        ready = await h.client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["store"].startswith("unreachable")
        assert ready.json()["reasons"] == [f"the session store is {ready.json()['store']}"]
        failed = await h.client.get("/v1/sessions")  # an unexpected error: 500, the one body, no details
        assert failed.status_code == 500
        error = failed.json()["error"]
        assert error["category"] == "system_error" and error["request_id"] == failed.headers["x-request-id"]
        assert "OperationalError" not in error["message"] and "request id" in error["message"]
    (tmp_path / "sessions.db").rmdir()


async def test_when_the_store_is_gone_tokens_cannot_be_checked_and_the_answer_is_503(harness, tmp_path):
    token = await harness.token("read")
    await harness.service.store.close()
    for name in ("sessions.db", "sessions.db-wal", "sessions.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / "sessions.db").mkdir()
    response = await harness.client.get("/v1/runs", headers=bearer(token))
    assert response.status_code == 503 and response.json()["error"]["category"] == "system_error"
    (tmp_path / "sessions.db").rmdir()


async def test_metrics_count_runs_turns_tokens_tools_dollars_and_429s(harness, fake, key):
    fake.script([Turn([tool_use("bash", {"command": "true"})]), "done", rate_limited(retry_after=0.0)], key=key)
    token = await harness.token()
    run = await harness.run(token, task="measure me", tools=["bash"])
    await harness.settled(run["id"])
    await harness.client.post(f"/v1/runs/{run['id']}/messages", json={"text": "and again"}, headers=bearer(token))
    assert (await harness.settled(run["id"]))["status"] == "failed"
    text = (await harness.client.get("/metrics", headers=bearer(token))).text
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert samples['tether_runs{status="failed"}'] == "1"
    assert samples['tether_runs_settled_total{status="completed"}'] == "1"
    assert samples['tether_fleet_finished_total{outcome="rate_limited"}'] == "1"
    assert samples["tether_turns_total"] == "2" and float(samples["tether_dollars_total"]) > 0
    assert int(samples['tether_tokens_total{kind="input"}']) > 0
    assert samples['tether_tool_call_seconds_count{tool="bash"}'] == "1"
    assert samples["tether_rate_limited_total"] == "1" and samples['tether_model_calls_total{result="ok"}'] == "2"
    assert "tether_cache_hit_ratio" in samples and samples["tether_event_streams"] == "0"
    assert re.search(r'tether_tool_call_seconds_bucket\{tool="bash",le="\+Inf"\} 1', text)
    for line in text.splitlines():  # the exposition format, line by line
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or re.fullmatch(
            r'[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+', line), line


async def test_config_is_the_effective_settings_with_secrets_masked(fake, key, tmp_path):
    async with open_harness(fake, key, tmp_path, mcp={"files": {"command": "srv", "env": {"TOKEN": "s3cret"},
                                                              "headers": {"Authorization": "Bearer s3cret"}}},
                            **{"store.url": f"{tmp_path}/sessions.db"}) as h:
        admin = await h.token("admin")
        config = await h.client.get("/v1/config", headers=bearer(admin))
        assert config.status_code == 200
        body = config.json()
        assert key not in config.text and "s3cret" not in config.text
        assert body["api"]["api_key"] == "***" and body["server"]["auth"] is True
        assert body["mcp"]["files"]["env"] == {"TOKEN": "***"} and body["mcp"]["files"]["command"] == "srv"


def test_the_openapi_document_describes_exactly_the_routes():
    doc = document()
    assert doc["openapi"].startswith("3.1")
    described = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    served = {(op.method, op.path) for op in OPERATIONS}
    assert described == served
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert "default" in op["responses"], (method, path)
            for ref in re.findall(r'"\$ref": "#/components/schemas/(\w+)"', str(op).replace("'", '"')):
                assert ref in doc["components"]["schemas"], ref


async def test_openapi_json_is_served(harness):
    token = await harness.token("read")
    response = await harness.client.get("/openapi.json", headers=bearer(token))
    assert response.status_code == 200 and response.json() == document()


async def test_every_response_has_a_request_id_and_failures_have_the_one_error_body(harness):
    token = await harness.token("read")
    kept = await harness.client.get("/healthz", headers={"X-Request-ID": "my-trace.42"})
    assert kept.headers["x-request-id"] == "my-trace.42"
    replaced = await harness.client.get("/healthz", headers={"X-Request-ID": "bad id!" * 20})
    assert replaced.headers["x-request-id"].startswith("req_")
    for method, path, status in (("GET", "/nope", 404), ("PUT", "/v1/runs", 405), ("GET", "/v1/runs/x/y", 404)):
        response = await harness.client.request(method, path, headers=bearer(token))
        assert response.status_code == status
        assert set(response.json()) == {"error"}
        assert set(response.json()["error"]) == {"category", "message", "request_id"}
        assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


async def test_cors_is_off_unless_origins_are_listed(fake, key, tmp_path):
    preflight = {"Origin": "https://page.example", "Access-Control-Request-Method": "POST"}
    async with open_harness(fake, key, tmp_path) as h:
        response = await h.client.options("/v1/runs", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    async with open_harness(fake, key, tmp_path, **{"server.cors_origins": "https://page.example"}) as h:
        response = await h.client.options("/v1/runs", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://page.example"
        other = await h.client.options("/v1/runs", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
