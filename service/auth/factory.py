"""Builds the authenticator that `[auth] mode` asks for, refusing configurations that cannot work.

`create_app` calls this before serving, so a bad `[auth]` section stops the process with a
`ConfigError` (exit status 2) instead of failing on the first request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx2
from starlette.requests import HTTPConnection

from service import __version__
from service.auth.backend import BearerAuthenticator, TokenVerifier
from service.auth.introspection import IntrospectionVerifier
from service.auth.jwks import FileJwks, KeySource, RemoteJwks
from service.auth.jwt_verifier import ASYMMETRIC_ALGORITHMS, JwtVerifier
from service.auth.principal import ADMIN, Authenticator, Principal, TenantRule
from service.auth.token_cache import RejectionCache, TokenCache
from service.settings import AuthSettings, ConfigError

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class NoAuthentication:
    """`mode = "disabled"`: every caller is an anonymous administrator of the default tenant."""

    def __init__(self, tenant: str) -> None:
        self._anonymous = Principal(sub="anonymous", scopes=frozenset({ADMIN}), tenant=tenant)

    async def authenticate(self, conn: HTTPConnection) -> Principal:
        return self._anonymous

    async def close(self) -> None:
        return None


def build_authenticator(
    settings: AuthSettings,
    http_client: httpx2.AsyncClient | None = None,
    *,
    clock: Clock | None = None,
) -> Authenticator:
    """The authenticator for `settings`.

    `http_client` (tests: one bound to an in-process IdP) is used as given and not closed;
    without it, one is created here and closed by the authenticator's `close()`. `clock`
    replaces both the wall clock and the monotonic clock (tests only).
    """
    check_auth_settings(settings)
    if settings.mode == "disabled":
        log.warning("authentication is DISABLED: every request is treated as an administrator")
        return NoAuthentication(settings.default_tenant)
    owned = None
    if http_client is None and (settings.mode == "introspection" or settings.jwks_url):
        http_client = owned = httpx2.AsyncClient(
            timeout=settings.http_timeout,
            follow_redirects=False,
            headers={"User-Agent": f"models-service/{__version__}"},
        )
    tenants = TenantRule(settings.tenant_claim, settings.default_tenant, settings.require_tenant)
    verifier: TokenVerifier
    if settings.mode == "jwt":
        verifier = JwtVerifier(
            _key_source(settings, http_client, clock),
            issuer=settings.issuer,
            audience=settings.audience,
            algorithms=settings.algorithms,
            leeway=settings.leeway_seconds,
            trust_seconds=settings.jwks_cache_seconds,
            tenants=tenants,
            clock=clock or time.time,
        )
    else:
        assert http_client is not None
        verifier = IntrospectionVerifier(
            settings.introspection_url,
            http_client,
            client_id=settings.introspection_client_id,
            client_secret=settings.introspection_client_secret,
            issuer=settings.issuer,
            audience=settings.audience,
            leeway=settings.leeway_seconds,
            timeout=settings.http_timeout,
            tenants=tenants,
            clock=clock or time.time,
        )
    cache = TokenCache(settings.token_cache_size, clock or time.time)
    rejections = None
    if settings.mode == "introspection":
        rejections = RejectionCache(
            settings.token_cache_size, settings.rejected_token_cache_seconds, clock or time.time
        )
    return BearerAuthenticator(verifier, cache, owned, rejections=rejections)


def _key_source(
    settings: AuthSettings, client: httpx2.AsyncClient | None, clock: Clock | None
) -> KeySource:
    if settings.jwks_file:
        return FileJwks(settings.jwks_file)
    assert client is not None
    return RemoteJwks(
        settings.jwks_url,
        client,
        cache_seconds=settings.jwks_cache_seconds,
        min_refresh_seconds=settings.jwks_min_refresh_seconds,
        timeout=settings.http_timeout,
        clock=clock or time.monotonic,
    )


def check_auth_settings(settings: AuthSettings) -> None:
    """Raise `ConfigError` naming every `[auth]` key that keeps `settings.mode` from working."""
    if settings.mode == "jwt":
        _check_jwt(settings)
    elif settings.mode == "introspection":
        _check_introspection(settings)


def _check_jwt(settings: AuthSettings) -> None:
    missing = [f"auth.{key}" for key in ("issuer", "audience") if not getattr(settings, key)]
    if not (settings.jwks_url or settings.jwks_file):
        missing.append("auth.jwks_url or auth.jwks_file")
    if missing:
        raise ConfigError(
            'auth.mode = "jwt" needs ' + ", ".join(missing) + " (the token issuer, the audience "
            "this service expects and where its signing keys are). `make run` configures a "
            'local development key; set auth.mode = "disabled" only to turn checks off.'
        )
    if settings.jwks_url and settings.jwks_file:
        raise ConfigError("set only one of auth.jwks_url and auth.jwks_file")
    if settings.jwks_url:
        _check_url("auth.jwks_url", settings.jwks_url)
    if not settings.algorithms:
        raise ConfigError("auth.algorithms is empty: no token could ever be accepted")
    refused = [alg for alg in settings.algorithms if alg not in ASYMMETRIC_ALGORITHMS]
    if refused:
        raise ConfigError(
            f"auth.algorithms: {', '.join(map(repr, refused))} not accepted; only public-key "
            f"signature algorithms are ({', '.join(sorted(ASYMMETRIC_ALGORITHMS))}): 'none' "
            "verifies nothing and HMAC would make the public key a shared secret"
        )


def _check_introspection(settings: AuthSettings) -> None:
    missing = [
        f"auth.{key}"
        # Without an audience any token the authorization server issued, for any API, would be
        # accepted here; without an issuer, an answer about another realm's token.
        for key in ("issuer", "audience", "introspection_url", "introspection_client_id")
        if not getattr(settings, key)
    ]
    if not settings.introspection_client_secret:
        missing.append("SERVICE__AUTH__INTROSPECTION_CLIENT_SECRET (environment)")
    if missing:
        raise ConfigError('auth.mode = "introspection" needs ' + ", ".join(missing))
    _check_url("auth.introspection_url", settings.introspection_url)


def _check_url(key: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key} must be an http(s) URL, not {url!r}")
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        # Allowed for in-cluster IdPs behind a mesh, but whoever can alter this traffic can
        # make us trust their keys or their introspection answers.
        log.warning("%s uses plain http: %s; prefer https", key, url)
