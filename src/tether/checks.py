"""Checks of a configuration, run by ``tether config check`` and when the service starts."""

from __future__ import annotations

import warnings

from tether.api.catalog import Catalog, UnknownModelWarning
from tether.config import Settings
from tether.errors import TetherError


async def problems(settings: Settings, *, service: bool = False) -> list[str]:
    """What is wrong with ``settings``, each with what to change. Empty when all is well."""
    found: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UnknownModelWarning)
            Catalog.load(settings.models).get(settings.model)
    except UnknownModelWarning as warning:
        found.append(str(warning))
    except TetherError as exc:
        found.append(str(exc))
    if not settings.api.api_key:
        found.append("no Anthropic API key: set ANTHROPIC_API_KEY or api.api_key in tether.toml")
    found += await _store(settings)
    if service and settings.profile == "prod":
        if not settings.server.auth:
            found.append("the prod profile refuses to serve without auth: set server.auth = true")
        if settings.server.debug:
            found.append("the prod profile refuses to serve with server.debug on: set server.debug = false")
    return found


async def _store(settings: Settings) -> list[str]:
    from tether.store.sql import open_store

    try:
        store = await open_store(settings.store.url)
    except Exception as exc:  # any failure to reach or migrate the store is the finding itself
        where = "the default SQLite file" if settings.store.url is None else "store.url"
        return [f"the session store is unreachable ({where}): {type(exc).__name__}: {exc}"]
    await store.close()
    return []
