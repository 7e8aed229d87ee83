"""``/v1/runs``: start runs, watch them, follow up, interrupt, cancel and approve their tool calls.

A run is visible to the tokens of its tenant, and to admin tokens: to any other token it does not
exist (404), so one tenant cannot watch or steer another's.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from tether.server.bodies import ApprovalDecision, MessageCreate, RunCreate
from tether.server.errors import invalid, not_found, unavailable
from tether.server.routing import Call, Operation, route
from tether.server.runs import STATUSES, RunConfig, ServiceRun
from tether.server.sse import EventStream

ROUTES: list[Operation] = []


def _run(call: Call) -> ServiceRun:
    run = call.service.manager.get(call.param("run_id"))
    if run.config.tenant != call.token.tenant and "admin" not in call.token.scopes:
        raise not_found(f"no run {run.id!r}")
    return run


def _accepted(run: ServiceRun) -> JSONResponse:
    return JSONResponse({"id": run.id, "session_id": run.session_id, "status": run.status}, status_code=202,
                        headers={"Location": f"/v1/runs/{run.id}"})


@route("POST", "/v1/runs", scope="run", table=ROUTES)
async def create_run(call: Call) -> Response:
    body = await call.body(RunCreate)
    if call.service.draining:
        raise unavailable("the service is shutting down; start the run again in a moment")
    limits = body.limits.model_dump(exclude_none=True) if body.limits else {}
    config = RunConfig(call.token.tenant, body.model, tuple(body.tools), limits, dict(body.permissions),
                       body.title, tuple(body.tags))
    run = await call.service.manager.start(body.task, config, session_id=body.session_id)
    return _accepted(run)


@route("GET", "/v1/runs", scope="read", table=ROUTES)
async def list_runs(call: Call) -> Response:
    status = call.query_choice("status", STATUSES)
    limit = call.query_int("limit", 100, 1, 1000)
    tenant = None if "admin" in call.token.scopes else call.token.tenant
    runs = call.service.manager.listing(status=status, tenant=tenant, limit=limit)
    return JSONResponse({"runs": [run.to_dict() for run in runs]})


@route("GET", "/v1/runs/{run_id}", scope="read", table=ROUTES)
async def get_run(call: Call) -> Response:
    return JSONResponse(_run(call).to_dict())


@route("POST", "/v1/runs/{run_id}/cancel", scope="run", table=ROUTES)
async def cancel_run(call: Call) -> Response:
    run = _run(call)
    await call.service.manager.cancel(run)
    return JSONResponse(run.to_dict())


@route("POST", "/v1/runs/{run_id}/interrupt", scope="run", table=ROUTES)
async def interrupt_run(call: Call) -> Response:
    run = _run(call)
    await call.service.manager.interrupt(run)
    return JSONResponse(run.to_dict())


@route("POST", "/v1/runs/{run_id}/messages", scope="run", table=ROUTES)
async def send_message(call: Call) -> Response:
    run = _run(call)
    body = await call.body(MessageCreate)
    if call.service.draining:
        raise unavailable("the service is shutting down; send the message again in a moment")
    await call.service.manager.follow_up(run, body.text)
    return _accepted(run)


@route("GET", "/v1/runs/{run_id}/approvals", scope="read", table=ROUTES)
async def list_approvals(call: Call) -> Response:
    run = _run(call)
    return JSONResponse({"approvals": [a.to_dict() for a in run.approvals.values()]})


@route("POST", "/v1/runs/{run_id}/approvals/{tool_use_id}", scope="run", table=ROUTES)
async def decide(call: Call) -> Response:
    run = _run(call)
    body = await call.body(ApprovalDecision)
    call.service.manager.decide(run, call.param("tool_use_id"), body.decision)
    return JSONResponse({"tool_use_id": call.param("tool_use_id"), "decision": body.decision,
                         "status": run.status})


@route("GET", "/v1/runs/{run_id}/events", scope="read", table=ROUTES)
async def events(call: Call) -> Response:
    run = _run(call)
    raw = call.request.headers.get("last-event-id") or call.request.query_params.get("last_event_id") or "0"
    try:
        after = int(raw.strip())
    except ValueError:
        raise invalid(f"Last-Event-ID must be an event number, not {raw[:40]!r}") from None
    if after < 0:
        raise invalid("Last-Event-ID must not be negative")
    if (not run.active and after >= run.log.last_seq) or call.service.draining:
        return Response(status_code=204)  # nothing more will come: an EventSource stops reconnecting
    if call.request.method == "HEAD":
        return Response(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    return EventStream(run, after, call.service.streams)  # type: ignore[return-value]
