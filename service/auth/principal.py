"""Who is calling and what they may do."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import msgspec
from starlette.requests import HTTPConnection

from service.auth.errors import AuthError, InsufficientScope
from service.domain.actors import is_tenant_name

SCOPES = (
    "models:read",
    "models:predict",
    "models:write",
    "datasets:read",
    "datasets:write",
    "admin",
)
ADMIN = "admin"


class Principal(msgspec.Struct, frozen=True):
    """The token's subject, its tenant and its scopes (which hold within that tenant only);
    `expires_at` bounds how long it may be cached."""

    sub: str
    scopes: frozenset[str]
    tenant: str
    expires_at: float | None = None

    def allows(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes


class Authenticator(Protocol):
    """Turns a request's credentials into a Principal, or raises `AuthError`."""

    async def authenticate(self, conn: HTTPConnection) -> Principal: ...

    async def close(self) -> None: ...


def scopes_from_claims(claims: Mapping[str, Any]) -> frozenset[str]:
    """Our scopes from `scope` (space-separated, RFC 8693/9068) and/or `scp` (a list, or a
    space-separated string as Entra ID sends it). Scopes this service does not define are dropped:
    they can grant nothing here and would only fill the token cache."""
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(v for v in value if isinstance(v, str))
    return frozenset(found.intersection(SCOPES))


class TenantRule(msgspec.Struct, frozen=True):
    """Where a token names its tenant (`auth.tenant_claim`, `auth.default_tenant`,
    `auth.require_tenant`)."""

    claim: str = "tenant"
    default: str = "default"
    required: bool = False

    def tenant_of(self, claims: Mapping[str, Any]) -> str:
        value = claims.get(self.claim)
        if value is None:
            if self.required:
                raise AuthError(f"the token has no `{self.claim}` claim", "no_tenant")
            return self.default
        if not isinstance(value, str) or not is_tenant_name(value):
            raise AuthError(
                f"the token's `{self.claim}` claim is not a tenant name"
                " (letters, digits, '.', '_' and '-', at most 63)",
                "bad_tenant",
            )
        return value


def authorize(principal: Principal, *scopes: str) -> None:
    """Lets the principal through only with every one of `scopes`; the refusal names each
    one it lacks, so a client learns everything to ask for at once."""
    missing = [scope for scope in scopes if not principal.allows(scope)]
    if missing:
        raise InsufficientScope(*missing, required=scopes)
