"""Who is calling: the bearer token of a request, checked against the token store.

Every route but ``/healthz`` (and the page's static files) names the scope it needs (see
``tokens``). No token, a malformed, unknown or revoked one: 401 ``unauthorized`` with
``WWW-Authenticate: Bearer``. A live token without the scope: 403 ``forbidden``. With
``server.auth = false`` (dev profile only) every caller is ``ANONYMOUS``: all scopes, tenant
``default``. Request headers are never logged, and a token never appears in a message.
"""

from __future__ import annotations

from starlette.datastructures import Headers

from tether.server.errors import ServiceError, unavailable
from tether.server.tokens import SCOPES, ServiceToken, TokenStore

ANONYMOUS = ServiceToken("anonymous", "anonymous (auth off)", "default", SCOPES)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tether"'}


class Authenticator:
    def __init__(self, tokens: TokenStore | None) -> None:
        self.tokens = tokens  # None: auth is off

    async def check(self, headers: Headers, scope: str) -> ServiceToken:
        """The caller, if it may use ``scope``; else a ``ServiceError`` (401 or 403)."""
        if self.tokens is None:
            return ANONYMOUS
        kind, _, text = headers.get("authorization", "").partition(" ")
        if kind.lower() != "bearer" or not text.strip():
            raise ServiceError("unauthorized", "this route needs a service token: Authorization: Bearer tth_…",
                               headers=_CHALLENGE)
        try:
            token = await self.tokens.verify(text.strip())
        except Exception as exc:  # the store is down: nobody can be checked, which is not the caller's fault
            raise unavailable(f"cannot check the token: the store is unreachable ({type(exc).__name__})") from exc
        if token is None:
            raise ServiceError("unauthorized", "the service token is malformed, unknown or revoked",
                               headers={"WWW-Authenticate": 'Bearer realm="tether", error="invalid_token"'})
        if not token.allows(scope):
            raise ServiceError("forbidden", f"token {token.id} ({', '.join(token.scopes)}) lacks the "
                                            f"{scope!r} scope this route needs")
        return token
