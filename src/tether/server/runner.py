"""Serving the app under uvicorn, with a shutdown that leaves every run resumable (``tether serve``).

On SIGTERM or SIGINT: the service drains at once (new runs refused with 503, every event stream
ended with ``event: shutdown``, so uvicorn is not kept waiting by open streams), uvicorn stops
accepting connections and finishes the requests under way (``GRACE`` seconds at most), then the
app's lifespan ends: active runs are cancelled, recorded for resume, and the store is closed.

Logging goes to standard error through ``RedactingFilter``; uvicorn's access log is off (the
service writes its own, without query strings or headers).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from types import FrameType

import uvicorn

from tether.config import Settings
from tether.server.app import create_app
from tether.server.redact import RedactingFilter, Redactor
from tether.server.service import ServiceOptions

GRACE = 15  # seconds uvicorn waits for requests under way after a signal


class _Server(uvicorn.Server):
    """uvicorn's server, draining the service as soon as a stop signal arrives."""

    def __init__(self, config: uvicorn.Config, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(config)
        self.loop = loop

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        service = getattr(self.config.app.state, "service", None)
        if service is not None:
            self.loop.call_soon_threadsafe(service.drain)
        super().handle_exit(sig, frame)


def configure_logging(settings: Settings, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(Redactor([settings.api.api_key])))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    for chatty in ("httpx2", "httpcore2", "anthropic"):  # a line per model call: the metrics count them
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))


async def serve(settings: Settings, options: ServiceOptions | None = None, *,
                sock: socket.socket | None = None) -> None:
    """Serve until a stop signal, on ``server.host``/``server.port`` (or ``sock``, already bound)."""
    app = create_app(settings, options)
    config = uvicorn.Config(app, host=settings.server.host, port=settings.server.port, lifespan="on",
                            access_log=False, log_config=None, server_header=False,
                            timeout_graceful_shutdown=GRACE, proxy_headers=False)
    server = _Server(config, asyncio.get_running_loop())
    await server.serve(sockets=[sock] if sock is not None else None)
    if not server.started:
        raise SystemExit(3)  # the app did not start (uvicorn logged why)
