"""Schemathesis against ``/openapi.json``: generated requests to every operation of a live service
(real uvicorn on loopback, the fake API as the model) never get a 5xx, and every answer matches
the document. Examples are bounded so that the module runs in well under a minute."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection
from server_helpers import LiveService, bearer, settings_for

from tether import AnthropicClient
from tether.server.app import create_app
from tether.server.openapi import document
from tether.server.service import ServiceOptions
from tether.testing import FakeAPI

schema = schemathesis.openapi.from_dict(document())


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schemathesis")
    key = f"sk-ant-test-{uuid.uuid4().hex[:16]}"
    with FakeAPI() as fake:
        base = AnthropicClient(api_key=key, base_url=fake.base_url, max_retries=0)
        app = create_app(settings_for(fake, key, tmp), ServiceOptions(workspaces=tmp / "w", heartbeat=0.2), base=base)
        with LiveService(app, close=base.aclose) as service:
            made = asyncio.run_coroutine_threadsafe(service.service.tokens.create("fuzz", "admin", "team-a"),
                                                    service.loop)
            service.token = made.result(10)[1]
            run = asyncio.run_coroutine_threadsafe(_a_finished_run(service), service.loop).result(30)
            service.run = run
            yield service


async def _a_finished_run(live: LiveService):
    from tether.server.runs import RunConfig

    run = await live.service.manager.start("hello", RunConfig("team-a"))
    while run.active:
        await asyncio.sleep(0.01)
    return run


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_generated_request_gets_a_server_error(case, live):
    params = dict(case.path_parameters or {})
    real = {"run_id": live.run.id, "session_id": live.run.session_id}
    if case.method == "DELETE":
        real.pop("session_id")  # deleting the one real session would leave the others only 404s
    excluded = []
    if set(params) & set(real):  # a real run and session, so that more than the 404 path is exercised
        case.path_parameters = {**params, **{k: v for k, v in real.items() if k in params}}
        excluded = [negative_data_rejection]  # the ids were made valid: a generated violation may be gone
    case.call_and_validate(base_url=live.url, headers=bearer(live.token), timeout=30, excluded_checks=excluded)
