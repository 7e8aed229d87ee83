"""Secrets stay out: a run whose service holds an API key and a service token in its environment,
whose tools print their environment and whose model fails once, leaves neither secret in the
service's log, the event stream, any response, or the store's files."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import httpx2
from server_helpers import bearer, free_port, sse_frames
from test_shutdown import Serve, config, env, make_token

from tether.testing import FakeAPI, Turn, server_error, tool_use


def test_no_secret_reaches_logs_events_responses_or_the_store(tmp_path: Path):
    api_key = f"sk-ant-leak-{uuid.uuid4().hex}"
    port = free_port()
    toml = config(tmp_path, port)
    with FakeAPI() as fake:
        environ = env(tmp_path, ANTHROPIC_API_KEY=api_key, ANTHROPIC_BASE_URL=fake.base_url)
        token = make_token(toml, environ, "read,run,admin")
        secret = token.split("_", 2)[2]
        environ["TETHER_TEST_SERVICE_TOKEN"] = token
        fake.script([Turn([tool_use("bash", {"command": "env; echo key=$ANTHROPIC_API_KEY "
                                                          "token=$TETHER_TEST_SERVICE_TOKEN"})]),
                     "printed the environment", server_error(), "and recovered"], key=api_key)
        serve = Serve(tmp_path, toml, port, environ, "leak", "--log-level", "debug")
        url, auth = f"http://127.0.0.1:{port}", bearer(token)
        seen: list[str] = []
        try:
            with httpx2.Client(base_url=url, headers=auth, timeout=30) as client:
                def keep(response: httpx2.Response) -> httpx2.Response:
                    seen.append("\n".join([response.text, *(f"{k}: {v}" for k, v in response.headers.items())]))
                    return response

                run = keep(client.post("/v1/runs", json={"task": "show me your environment", "tools": ["bash"]}))
                run = run.json()
                with client.stream("GET", f"/v1/runs/{run['id']}/events") as response:
                    frames = list(sse_frames(response))
                seen.append(str(frames))
                assert frames[-1]["data"]["status"] == "completed"
                tool_output = next(f["data"]["content"] for f in frames if f.get("event") == "tool_result")
                assert "key=" in str(tool_output) and "token=" in str(tool_output)  # the variables are not passed
                keep(client.post(f"/v1/runs/{run['id']}/messages", json={"text": "go on"}))
                with client.stream("GET", f"/v1/runs/{run['id']}/events",
                                   headers={"Last-Event-ID": frames[-1]["id"]}) as response:
                    more = list(sse_frames(response))
                seen.append(str(more))
                for path in (f"/v1/runs/{run['id']}", "/v1/runs", "/v1/sessions", f"/v1/sessions/{run['session_id']}",
                             f"/v1/sessions/{run['session_id']}/export",
                             f"/v1/sessions/{run['session_id']}/export?format=markdown", "/v1/config", "/metrics",
                             "/readyz", "/v1/usage?by=tenant", "/v1/tokens", "/openapi.json", "/nope",
                             f"/v1/runs/{run['id']}/approvals"):
                    keep(client.get(path))
                keep(client.post("/v1/runs", content=b"{not json"))
                keep(client.get("/v1/runs", headers={"Authorization": f"Bearer {token}x"}))
        finally:
            assert serve.stop() in (0, -signal.SIGTERM)
    log = serve.log.read_text()
    assert "POST /v1/runs 202" in log  # the log was written
    files = [p for p in tmp_path.iterdir() if p.name.startswith("sessions.db")]
    stored = b"".join(p.read_bytes() for p in files)
    for secret_text in (api_key, token, secret):
        assert secret_text not in log, "the log"
        assert secret_text.encode() not in stored, "the store"
        for i, text in enumerate(seen):
            assert secret_text not in text, f"response {i}"
