"""Where the issuer's public signing keys come from: a JWKS URL (cached) or a local JWKS file.

The remote cache refetches when its TTL runs out, and once when a token names a `kid` it does not
know (the IdP rotated its keys) — but at most once per `jwks_min_refresh_seconds`, so tokens with
random kids cannot make us hammer the IdP. Fetches are serialised by one lock; the common path
(fresh keys, known kid) takes no lock at all.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

import httpx2
import msgspec
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, KeySetSerialization

from service.auth.errors import AuthError
from service.settings import ConfigError

log = logging.getLogger(__name__)

# Enough for any real JWKS (a few keys); a bigger answer is refused rather than parsed.
MAX_JWKS_BYTES = 512 * 1024


class KeySource(Protocol):
    async def key_set(self, kid: str | None) -> KeySet:
        """Keys to verify a token whose header names `kid`; `AuthError` if there are none."""
        ...


class JwksError(Exception):
    """The JWKS could not be fetched or is not a usable key set."""


def parse_jwks(data: bytes) -> KeySet:
    """A public key set from JWKS JSON; private or symmetric key material is refused."""
    try:
        raw: Any = msgspec.json.decode(data)
        if not isinstance(raw, dict) or not isinstance(raw.get("keys"), list):
            raise JwksError('not a JWKS: expected {"keys": [...]}')
        # A verifier must never hold signing material: "d" (private RSA/EC/OKP) or "k" (oct).
        if any(isinstance(k, dict) and ("d" in k or "k" in k) for k in raw["keys"]):
            raise JwksError("contains private or symmetric key material; use the public JWKS")
        return KeySet.import_key_set(cast(KeySetSerialization, raw))
    except (msgspec.DecodeError, JoseError, KeyError, TypeError, ValueError) as exc:
        raise JwksError(str(exc) or type(exc).__name__) from exc


class FileJwks:
    """A JWKS read once from a file (`auth.jwks_file`), e.g. the development key of `make run`."""

    def __init__(self, path: str | Path) -> None:
        try:
            self._keys = parse_jwks(Path(path).read_bytes())
        except (OSError, JwksError) as exc:
            raise ConfigError(f"auth.jwks_file {path}: {exc}") from exc

    async def key_set(self, kid: str | None) -> KeySet:
        return self._keys


class RemoteJwks:
    """The issuer's JWKS fetched over HTTP(S), cached for `cache_seconds`."""

    def __init__(
        self,
        url: str,
        client: httpx2.AsyncClient,
        *,
        cache_seconds: float,
        min_refresh_seconds: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._client = client
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh_seconds
        self._timeout = timeout
        self._clock = clock
        self._lock = asyncio.Lock()
        self._keys: KeySet | None = None
        self._kids: frozenset[str | None] = frozenset()
        self._expires_at = -math.inf
        self._last_attempt = -math.inf
        self._last_kid_refetch = -math.inf

    async def key_set(self, kid: str | None) -> KeySet:
        keys = self._keys
        if keys is not None and self._clock() < self._expires_at and self._knows(kid):
            return keys
        async with self._lock:
            return await self._refresh(kid)

    def _knows(self, kid: str | None) -> bool:
        # A token without `kid` is matched by joserfc (it works when the set has one key); only
        # a named, unknown kid is a sign of rotation worth a refetch.
        return kid is None or kid in self._kids

    async def _refresh(self, kid: str | None) -> KeySet:
        now = self._clock()
        keys = self._keys
        fresh = keys is not None and now < self._expires_at
        if keys is not None and fresh and self._knows(kid):
            return keys  # another request refreshed the set while this one waited for the lock
        # Rate limits: an unknown kid refetches at most once per window, and after a failed or
        # stale fetch the IdP is not asked again within the window either.
        last = self._last_kid_refetch if fresh else self._last_attempt
        if now - last < self._min_refresh:
            return self._fallback(now, None)
        if fresh:
            self._last_kid_refetch = now
        self._last_attempt = now
        try:
            fetched = await self._fetch()
        except JwksError as exc:
            return self._fallback(now, exc)
        self._keys = fetched
        self._kids = frozenset(key.kid for key in fetched)
        self._expires_at = now + self._cache_seconds
        log.info("fetched JWKS", extra={"url": self.url, "kids": sorted(map(str, self._kids))})
        return fetched

    def _fallback(self, now: float, error: JwksError | None) -> KeySet:
        """The keys we still have when no fetch is possible now (rate limit) or it failed."""
        keys = self._keys
        # Keys past their TTL stay usable for one more TTL while the IdP is unreachable, so a
        # short IdP outage does not lock every client out; after that they are dropped.
        usable = keys is not None and now < self._expires_at + self._cache_seconds
        if error is not None:
            log.error(
                "cannot fetch the identity provider's JWKS from %s: %s%s",
                self.url,
                error,
                "; still using the keys fetched before" if usable else "",
            )
        if usable:
            assert keys is not None
            return keys
        raise AuthError(
            "the identity provider's signing keys are unavailable",
            "idp_unavailable",
            transient=True,
        )

    async def _fetch(self) -> KeySet:
        try:
            response = await self._client.get(
                self.url, timeout=self._timeout, headers={"Accept": "application/json"}
            )
        except httpx2.HTTPError as exc:
            raise JwksError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise JwksError(f"HTTP {response.status_code}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise JwksError(f"response larger than {MAX_JWKS_BYTES} bytes")
        return parse_jwks(response.content)
