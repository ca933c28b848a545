"""A tiny in-process identity provider for the auth tests: real keys, real signatures.

It publishes a JWKS and answers RFC 7662 introspection; the authenticator reaches it through an
`httpx2.ASGITransport`, so no network and no mocks of our own code are involved.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import urllib.parse
import warnings
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ISSUER = "https://idp.test/realms/acme"
AUDIENCE = "models-service"
JWKS_URL = "https://idp.test/jwks"
INTROSPECTION_URL = "https://idp.test/introspect"
CLIENT_ID = "models-service"
CLIENT_SECRET = "s3cret"

Key = RSAKey | ECKey | OKPKey


def rsa_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})


def ec_key(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid, "alg": "ES256", "use": "sig"})


def ed_key(kid: str) -> OKPKey:
    return OKPKey.generate_key("Ed25519", parameters={"kid": kid, "use": "sig"})


class Clock:
    """A settable clock standing in for both the wall clock and the monotonic clock."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def claims(now: float, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "scope": "models:read",
        "iat": int(now),
        "exp": int(now) + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def mint(key: Key, now: float, *, header: dict[str, Any] | None = None, **overrides: Any) -> str:
    """An RFC 9068 access token (`typ: at+jwt`) signed by `key`; claim and header overrides of
    None remove the claim or header."""
    alg = {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}[key.key_type]
    hdr = {"alg": alg, "kid": key.kid, "typ": "at+jwt", **(header or {})}
    hdr = {k: v for k, v in hdr.items() if v is not None}
    with warnings.catch_warnings():
        # joserfc warns when *signing* with "EdDSA" (RFC 9864); IdPs still do, so tests do too.
        warnings.simplefilter("ignore", SecurityWarning)
        return jwt.encode(
            hdr, claims(now, **overrides), key, algorithms=[hdr["alg"]], default_type=None
        )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


def hs256_with_public_key(key: Key, now: float) -> str:
    """The key-confusion attack: HMAC-SHA256 keyed with the RSA *public* key's PEM."""
    assert isinstance(key, RSAKey)
    signing_input = unsigned({"alg": "HS256", "kid": key.kid, "typ": "JWT"}, claims(now))
    secret = key.as_pem(private=False)
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


@dataclass
class Idp:
    """The IdP's state; tests change it between requests (rotate keys, go down, revoke)."""

    keys: list[Key]
    introspection: dict[str, dict[str, Any]] = field(default_factory=dict)
    down: bool = False
    jwks_body: Any = None  # served instead of the public key set when set
    jwks_requests: int = 0
    introspection_requests: int = 0
    hold: asyncio.Event | None = None  # when set, introspection answers wait for it
    last_form: dict[str, list[str]] = field(default_factory=dict)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/jwks", self._jwks),
                Route("/introspect", self._introspect, methods=["POST"]),
            ]
        )

    async def _jwks(self, request: Request) -> Response:
        self.jwks_requests += 1
        if self.down:
            return Response("upstream unavailable", 503)
        if self.jwks_body is not None:
            return JSONResponse(self.jwks_body)
        return JSONResponse(KeySet(list(self.keys)).as_dict(private=False))

    async def _introspect(self, request: Request) -> Response:
        self.introspection_requests += 1
        if self.hold is not None:
            await self.hold.wait()
        if self.down:
            return Response("upstream unavailable", 503)
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": "invalid_client"}, 401)
        # Parsed by hand: Starlette's request.form() would need python-multipart.
        self.last_form = urllib.parse.parse_qs((await request.body()).decode())
        token = self.last_form.get("token", [""])[0]
        return JSONResponse(self.introspection.get(token, {"active": False}))


def request_with(authorization: str | None) -> Request:
    """A bare HTTP request carrying `authorization` (or no Authorization header)."""
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": headers}
    return Request(scope)


def bearer(token: str) -> Request:
    return request_with(f"Bearer {token}")
