"""The ASGI app of the service: ``create_app(settings)``.

    app = create_app(Settings.load())          # uvicorn.run(app), or `tether serve`

The app's lifespan opens the ``Service`` (store, fleet, clients) and closes it. The routes are
those of ``routes_runs``, ``routes_sessions`` and ``routes_ops``; the web page is served from
``static/`` at ``/`` without auth (its data calls carry the token). CORS is off unless
``server.cors_origins`` lists origins.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tether.api.client import ModelClient
from tether.config import Settings
from tether.server import routes_ops, routes_runs, routes_sessions
from tether.server.openapi import query_parameters
from tether.server.routing import Operation, RequestContext, http_exception, starlette_routes
from tether.server.service import Service, ServiceOptions

STATIC = Path(__file__).parent / "static"
OPERATIONS: tuple[Operation, ...] = (*routes_ops.ROUTES, *routes_runs.ROUTES, *routes_sessions.ROUTES)


def create_app(settings: Settings | None = None, options: ServiceOptions | None = None, *,
               base: ModelClient | None = None) -> Starlette:
    """The service for ``settings`` (default: ``Settings.load()``). ``base``: the ``ModelClient``
    under the fleet's wrappers, instead of the SDK client of ``settings.api`` (tests, benchmarks)."""
    settings = settings or Settings.load()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with Service.open(settings, options, base=base) as service:
            app.state.service = service
            yield

    middleware = [Middleware(RequestContext, debug=settings.server.debug)]
    if settings.server.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(settings.server.cors_origins),
                                     allow_methods=["GET", "POST", "DELETE"],
                                     allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Request-ID"],
                                     expose_headers=["X-Request-ID"]))
    routes: list[Route | Mount] = [*starlette_routes(OPERATIONS, query_parameters())]
    routes.append(Route("/", _index, methods=["GET"]))
    if STATIC.is_dir():
        routes.append(Mount("/static", app=StaticFiles(directory=STATIC), name="static"))
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                     exception_handlers={HTTPException: http_exception})


async def _index(request) -> Response:
    page = STATIC / "index.html"
    if page.is_file():
        return FileResponse(page)
    return Response("tether is running; its web page is not installed. The API is at /v1 (see /openapi.json).\n",
                    media_type="text/plain")


def service_of(app: Starlette) -> Service:
    """The running service of an app created here (inside its lifespan)."""
    return app.state.service
