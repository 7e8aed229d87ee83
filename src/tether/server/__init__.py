"""The HTTP service: runs, their event streams, sessions, usage, health, metrics; and its auth.

``create_app(settings)`` is the ASGI app; ``tether serve`` runs it under uvicorn with a graceful
shutdown (``runner``). The map of the modules:

- ``app``: the app and its lifespan; ``service``: what the routes work with;
- ``routes_runs``, ``routes_sessions``, ``routes_ops``: the routes; ``routing``: handlers, the
  request id, the one error body (``errors``), the access log;
- ``manager``: service runs on the fleet; ``runs``: a run's state; ``eventlog`` and ``sse``: its
  events, replayable and streamed;
- ``auth`` and ``tokens``: service tokens; ``redact``: secrets out of logs and streams;
- ``budgets``: each tenant's dollars per month; ``metrics``, ``usage``, ``openapi``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tether.server.app import create_app
    from tether.server.service import Service, ServiceOptions

__all__ = ["Service", "ServiceOptions", "create_app"]


def __getattr__(name: str) -> Any:
    """Imported when first used, so that ``tether tokens`` and the CLI do not load the web stack."""
    if name == "create_app":
        from tether.server.app import create_app

        return create_app
    if name in ("Service", "ServiceOptions"):
        from tether.server import service

        return getattr(service, name)
    raise AttributeError(f"module 'tether.server' has no attribute {name!r}")
