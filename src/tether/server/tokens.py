"""Service tokens: made, listed and revoked by an operator, checked on every request.

A token reads ``tth_<id>_<secret>``. It is shown once, when made; the store keeps its id, name,
tenant, scopes and the SHA-256 of its secret, never the secret. Checking a token looks its id up
and compares digests in constant time; a revoked token stops working at its next request.

Scopes (``SCOPES``): ``read`` for every GET; ``run`` to start, cancel, interrupt, message and
approve runs and to fork sessions; ``admin`` for tokens, the configuration and deleting sessions,
and everything ``read`` and ``run`` allow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tether.errors import UserError
from tether.store.base import NotFound
from tether.store.engine import writer
from tether.store.schema import UTCDateTime

PREFIX = "tth_"
SCOPES = ("read", "run", "admin")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_SHAPE = re.compile(r"tth_([0-9a-f]{16})_([A-Za-z0-9_-]{20,128})")
_DECOY = hashlib.sha256(b"tether: no such token").hexdigest()

# The table as migration 3 made it (``tether.store.migrations``).
service_tokens = sa.Table(
    "service_tokens", sa.MetaData(),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("tenant", sa.String(255), nullable=False),
    sa.Column("scopes", sa.Text, nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
)


@dataclass(frozen=True)
class ServiceToken:
    id: str
    name: str
    tenant: str
    scopes: tuple[str, ...]
    created_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "tenant": self.tenant, "scopes": list(self.scopes),
                "created_at": _iso(self.created_at), "revoked_at": _iso(self.revoked_at)}


def parse_scopes(scopes: str | Iterable[str]) -> tuple[str, ...]:
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    wanted = [s.strip() for s in items if s.strip()]
    if not wanted or (bad := [s for s in wanted if s not in SCOPES]):
        raise UserError(f"scopes are a comma-separated subset of {', '.join(SCOPES)}"
                        + (f", not {bad[0]!r}" if wanted else ""))
    return tuple(s for s in SCOPES if s in wanted)


def check_tenant(tenant: str) -> str:
    if not _TENANT.fullmatch(tenant):
        raise UserError("a tenant is 1-64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit")
    return tenant


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """Service tokens in the session store's database (any ``SQLStore`` engine)."""

    def __init__(self, engine: AsyncEngine, *, clock=lambda: dt.datetime.now(dt.UTC)) -> None:
        self.engine = engine
        self._clock = clock

    async def create(self, name: str, scopes: str | Iterable[str], tenant: str) -> tuple[ServiceToken, str]:
        """A new token and its text (``tth_<id>_<secret>``), which is not kept: show it once."""
        name = name.strip()
        if not name or len(name) > 200:
            raise UserError("a token needs a name of 1-200 characters")
        token = ServiceToken(secrets.token_hex(8), name, check_tenant(tenant), parse_scopes(scopes), self._clock())
        secret = secrets.token_urlsafe(32)
        async with writer(self.engine).begin() as conn:
            await conn.execute(service_tokens.insert().values(
                id=token.id, name=token.name, tenant=token.tenant, scopes=",".join(token.scopes),
                secret_sha256=digest(secret), created_at=token.created_at))
        return token, f"{PREFIX}{token.id}_{secret}"

    async def list(self) -> list[ServiceToken]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(service_tokens).order_by(service_tokens.c.created_at))).all()
        return [_token(row) for row in rows]

    async def get(self, token_id: str) -> ServiceToken | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(service_tokens).where(service_tokens.c.id == token_id))).first()
        return None if row is None else _token(row)

    async def revoke(self, token_id: str) -> ServiceToken:
        """Revoke a token (revoking it again keeps the first time). ``NotFound`` for an unknown id."""
        async with writer(self.engine).begin() as conn:
            await conn.execute(service_tokens.update().where(
                service_tokens.c.id == token_id, service_tokens.c.revoked_at.is_(None)).values(
                revoked_at=self._clock()))
        token = await self.get(token_id)
        if token is None:
            raise NotFound(f"no token {token_id!r}; `tether tokens list` shows them")
        return token

    async def verify(self, text: str) -> ServiceToken | None:
        """The live token ``text`` is, or None (malformed, unknown, wrong secret or revoked)."""
        shape = _SHAPE.fullmatch(text)
        if shape is None:
            return None
        token_id, secret = shape.groups()
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(service_tokens).where(service_tokens.c.id == token_id))).first()
        expected = row.secret_sha256 if row is not None else _DECOY
        if not hmac.compare_digest(digest(secret), expected) or row is None or row.revoked_at is not None:
            return None
        return _token(row)


def _token(row: sa.Row) -> ServiceToken:
    return ServiceToken(row.id, row.name, row.tenant, tuple(row.scopes.split(",")), row.created_at, row.revoked_at)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
