"""Who is calling and how: the API key, the ``anthropic-version`` and the ``anthropic-beta`` list.

Checked before the body is read (reference §5, §6, §9.1): a missing key is a 401, a missing or
unknown version a 400, an unknown beta a 400 ``Unsupported beta header: <name>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import get_args

from anthropic.types.anthropic_beta_param import AnthropicBetaParam

from tether.testing.fake.errors import APIFailure, invalid

VERSIONS = ("2023-06-01", "2026-10-21")
NEW_VERSION = "2026-10-21"


def _beta_literal() -> frozenset[str]:
    names: set[str] = set()
    for arg in get_args(AnthropicBetaParam):
        names.update(a for a in get_args(arg) if isinstance(a, str))
    return frozenset(names)


KNOWN_BETAS = _beta_literal()


@dataclass(frozen=True, slots=True)
class Caller:
    key: str
    version: str
    betas: frozenset[str]


def api_key(headers: Mapping[str, str]) -> str:
    """The key from ``x-api-key`` or ``Authorization: Bearer``; empty if neither is given."""
    key = headers.get("x-api-key", "").strip()
    if key:
        return key
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def identify(
    headers: Mapping[str, str], accepted_keys: Iterable[str] | None, extra_betas: frozenset[str]
) -> Caller:
    key = api_key(headers)
    if not key:
        raise APIFailure(401, "x-api-key header is required")
    if accepted_keys is not None and key not in accepted_keys:
        raise APIFailure(401, "invalid x-api-key")
    version = headers.get("anthropic-version", "").strip()
    if not version:
        raise invalid("anthropic-version: header is required")
    if version not in VERSIONS:
        raise invalid(f"anthropic-version: {version!r} is not a valid version")
    return Caller(key, version, _betas(headers.get("anthropic-beta", ""), extra_betas))


def _betas(value: str, extra: frozenset[str]) -> frozenset[str]:
    names = frozenset(name.strip() for name in value.split(",") if name.strip())
    for name in sorted(names):
        if name not in KNOWN_BETAS and name not in extra:
            raise invalid(f"Unsupported beta header: {name}")
    return names
