"""The bearer-token authenticator of the `jwt` and `introspection` modes.

`BearerAuthenticator` is what the route dispatcher (`http/routes.py`) calls: it raises `AuthError`
so that 401 and 403 are decided per operation, after routing.
"""

from __future__ import annotations

import asyncio
from hashlib import sha256
from typing import Protocol

import httpx2
from starlette.requests import HTTPConnection

from service.auth.bearer import bearer_token
from service.auth.errors import AuthError
from service.auth.principal import Principal
from service.auth.token_cache import RejectionCache, TokenCache


class TokenVerifier(Protocol):
    verifications: int

    async def verify(self, token: str) -> Principal:
        """The token's Principal (with `expires_at` set to how long it may be trusted)."""
        ...


class BearerAuthenticator:
    """Bearer header → token caches → verifier; closes the HTTP client it was given to own.

    `rejections` (introspection mode) remembers refused tokens briefly, and concurrent requests
    with one token share its introspection: there every miss is a call to the authorization
    server, which a client repeating a bad token must not multiply.
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        cache: TokenCache,
        owned_client: httpx2.AsyncClient | None = None,
        *,
        rejections: RejectionCache | None = None,
    ) -> None:
        self.verifier = verifier
        self.cache = cache
        self.rejections = rejections
        self._in_flight: dict[bytes, asyncio.Future[Principal]] = {}
        self._owned_client = owned_client

    async def authenticate(self, conn: HTTPConnection) -> Principal:
        # Hot path, run on every request and kept to a few C-level operations: a reused token
        # sent in the canonical `Bearer <token>` form costs a header scan, one SHA-256 and a
        # dict lookup. Anything else (first use, other spellings) takes the validating path.
        headers: list[tuple[bytes, bytes]] = conn.scope["headers"]
        for name, value in headers:
            if name == b"authorization":
                if value.startswith(b"Bearer "):
                    principal = self.cache.get(sha256(value[7:]).digest())
                    if principal is not None:
                        return principal
                break
        token = bearer_token(conn)  # validates the header, raising AuthError
        key = TokenCache.key(token)
        principal = self.cache.get(key)
        if principal is None:
            principal = await self._verify(token, key)
            self.cache.put(key, principal)
        return principal

    async def _verify(self, token: str, key: bytes) -> Principal:
        if self.rejections is None:
            return await self.verifier.verify(token)
        refused = self.rejections.get(key)
        if refused is not None:
            raise refused
        # Requests carrying the same token while it is being introspected share that one call:
        # otherwise a burst of one bad token would reach the IdP before the first answer is in.
        call = self._in_flight.get(key)
        if call is None:
            call = asyncio.ensure_future(self._introspect(token, key, self.rejections))
            self._in_flight[key] = call
            call.add_done_callback(lambda done: self._settle(key, done))
        # Shielded: one caller going away (client disconnect) must not cancel the others' call.
        return await asyncio.shield(call)

    async def _introspect(self, token: str, key: bytes, rejections: RejectionCache) -> Principal:
        try:
            return await self.verifier.verify(token)
        except AuthError as exc:
            rejections.put(key, exc)
            raise

    def _settle(self, key: bytes, call: asyncio.Future[Principal]) -> None:
        del self._in_flight[key]
        if not call.cancelled():
            call.exception()  # retrieved, in case every caller has gone: no "never retrieved" log

    async def close(self) -> None:
        if self._owned_client is not None:
            await self._owned_client.aclose()
