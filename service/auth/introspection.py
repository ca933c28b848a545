"""Opaque (or any) tokens checked by the authorization server's RFC 7662 introspection endpoint.

Authlib's `IntrospectTokenValidator` checks only `active` and `scope` and is synchronous, so the
few checks are done here: `active` must be exactly `true`, `exp`/`nbf` are honoured, `aud` must
contain our audience (RFC 7662 §4: the resource server decides) and `iss`, when the answer has
one, must be our issuer. `iss` is optional in RFC 7662 and the answer comes from the endpoint we
authenticated to, so its absence is no sign of a foreign token; a different one is.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import httpx2
import msgspec

from service.auth.errors import AuthError
from service.auth.principal import Principal, TenantRule, scopes_from_claims

log = logging.getLogger(__name__)

# An active answer is trusted for at most this long (and never past the token's `exp`): the
# point of introspection is that a revoked token stops working soon, not at its expiry.
MAX_CACHE_SECONDS = 60.0


class IntrospectionVerifier:
    """Asks the authorization server about each token it has not seen recently."""

    def __init__(
        self,
        url: str,
        client: httpx2.AsyncClient,
        *,
        client_id: str,
        client_secret: str,
        issuer: str,
        audience: str,
        leeway: int,
        timeout: float,
        tenants: TenantRule | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.tenants = tenants or TenantRule()
        self.verifications = 0  # introspection requests made
        self._client = client
        self._auth = httpx2.BasicAuth(client_id, client_secret)
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._timeout = timeout
        self._clock = clock

    async def verify(self, token: str) -> Principal:
        info = await self._introspect(token)
        if info.get("active") is not True:
            raise AuthError("the token is not active", "inactive")
        now = self._clock()
        exp = _number(info.get("exp"))
        if exp is not None and exp <= now - self._leeway:
            raise AuthError("the token has expired", "expired")
        nbf = _number(info.get("nbf"))
        if nbf is not None and nbf > now + self._leeway:
            raise AuthError("the token is not valid yet", "not_yet_valid")
        if info.get("iss", self._issuer) != self._issuer:
            raise AuthError("the token was issued by another issuer", "wrong_issuer")
        if not _contains(info.get("aud"), self._audience):
            raise AuthError("the token is meant for another audience", "wrong_audience")
        sub = info.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthError("the token has no subject", "invalid")
        limit = now + MAX_CACHE_SECONDS
        return Principal(
            sub=sub,
            scopes=scopes_from_claims(info),
            tenant=self.tenants.tenant_of(info),
            expires_at=limit if exp is None else min(exp, limit),
        )

    async def _introspect(self, token: str) -> dict[str, Any]:
        self.verifications += 1
        try:
            response = await self._client.post(
                self.url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._auth,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
        except httpx2.HTTPError as exc:
            raise self._unavailable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            # 401/403 here mean our own client credentials are wrong, not the caller's token.
            raise self._unavailable(f"HTTP {response.status_code}")
        try:
            info = msgspec.json.decode(response.content)
        except msgspec.DecodeError as exc:
            raise self._unavailable("the answer is not JSON") from exc
        if not isinstance(info, dict):
            raise self._unavailable("the answer is not a JSON object")
        return info

    def _unavailable(self, why: str) -> AuthError:
        log.error("token introspection at %s failed: %s", self.url, why)
        return AuthError("the token cannot be checked right now", "idp_unavailable", transient=True)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float: as good as never
        return math.inf


def _contains(aud: object, audience: str) -> bool:
    return aud == audience or (isinstance(aud, list) and audience in aud)
