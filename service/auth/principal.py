"""Who is calling and what they may do."""

from __future__ import annotations

from typing import Protocol

import msgspec
from starlette.requests import HTTPConnection

from service.auth.errors import InsufficientScope

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
    """The token's subject and its scopes; `expires_at` bounds how long it may be cached."""

    sub: str
    scopes: frozenset[str]
    expires_at: float | None = None

    def allows(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes


class Authenticator(Protocol):
    """Turns a request's credentials into a Principal, or raises `AuthError`."""

    async def authenticate(self, conn: HTTPConnection) -> Principal: ...

    async def close(self) -> None: ...


def authorize(principal: Principal, scope: str) -> None:
    if not principal.allows(scope):
        raise InsufficientScope(scope)
