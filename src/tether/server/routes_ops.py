"""Operations: health, readiness, metrics, configuration, the OpenAPI document, and tokens.

- ``/healthz``: the process answers (no auth).
- ``/readyz``: the store answers a query, the fleet takes runs, the service is not shutting down;
  503 with the reasons otherwise. Circuit breakers are reported (an open circuit means the
  Messages API is failing, not that this instance should leave the load balancer).
- ``/metrics``: Prometheus text (``metrics``).
- ``/v1/config``: the effective settings, secrets masked (admin).
- ``/v1/tokens``: list, make (the token text is in the answer, once) and revoke tokens (admin).
"""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa
from starlette.responses import JSONResponse, Response

from tether.server.bodies import TokenCreate
from tether.server.openapi import document
from tether.server.routes_sessions import budget_view
from tether.server.routing import Call, Operation, route

ROUTES: list[Operation] = []


@route("GET", "/healthz", scope=None, table=ROUTES)
async def healthz(call: Call) -> Response:
    return JSONResponse({"status": "ok"})


@route("GET", "/readyz", scope="read", table=ROUTES)
async def readyz(call: Call) -> Response:
    service = call.service
    reasons = []
    try:
        async with service.store.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        store = "ok"
    except Exception as exc:  # any failure to reach the store is the finding
        store = f"unreachable: {type(exc).__name__}"
        reasons.append(f"the session store is {store}")
    if service.draining:
        reasons.append("the service is shutting down")
    fleet = service.manager.fleet
    body = {
        "status": "not_ready" if reasons else "ready", "reasons": reasons, "store": store,
        "fleet": {"queued": fleet.stats.queued, "running": fleet.stats.running,
                  "concurrency": service.settings.server.concurrency},
        "circuits": service.breakers.states(),
    }
    return JSONResponse(body, status_code=503 if reasons else 200)


@route("GET", "/metrics", scope="read", table=ROUTES)
async def metrics(call: Call) -> Response:
    service = call.service
    runs = Counter(run.status for run in service.manager.runs.values())
    budgets = await budget_view(call, None if "admin" in call.token.scopes else call.token.tenant)
    text = service.metrics.render(runs=runs, fleet=service.manager.fleet.stats, circuits=service.breakers.states(),
                                  streams=len(service.streams.readers), budgets=(budgets or {}).get("tenants", ()))
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


@route("GET", "/v1/config", scope="admin", table=ROUTES)
async def config(call: Call) -> Response:
    return JSONResponse(call.service.public_settings())


@route("GET", "/openapi.json", scope="read", table=ROUTES)
async def openapi(call: Call) -> Response:
    return JSONResponse(document())


@route("GET", "/v1/tokens", scope="admin", table=ROUTES)
async def list_tokens(call: Call) -> Response:
    return JSONResponse({"tokens": [t.to_dict() for t in await call.service.tokens.list()]})


@route("POST", "/v1/tokens", scope="admin", table=ROUTES)
async def create_token(call: Call) -> Response:
    body = await call.body(TokenCreate)
    token, text = await call.service.tokens.create(body.name, body.scopes, body.tenant)
    return JSONResponse({**token.to_dict(), "token": text}, status_code=201)


@route("DELETE", "/v1/tokens/{token_id}", scope="admin", table=ROUTES)
async def revoke_token(call: Call) -> Response:
    token = await call.service.tokens.revoke(call.param("token_id"))
    return JSONResponse(token.to_dict())
