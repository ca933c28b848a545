"""JWT access tokens (RFC 7519 / RFC 9068 style) verified with joserfc against the issuer's keys.

Order matters: the header is parsed, the algorithm checked against the allow-list and the token
type checked before any key lookup (so `alg: none`, HS256-with-a-public-key or an ID token never
reach the network or a key), the signature is checked before any claim is trusted, and only then
`exp`/`nbf`/`iss`/`aud`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

import msgspec
from joserfc import errors as jose
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import KeySet
from joserfc.jws import CompactSignature, JWSRegistry, extract_compact, validate_compact
from joserfc.jwt import JWTClaimsRegistry

from service.auth.errors import AuthError
from service.auth.jwks import KeySource
from service.auth.principal import Principal, TenantRule, scopes_from_claims

# Signature algorithms that verify with a public key. HMAC ("HS*") would turn a published public
# key into a shared secret (the classic key-confusion attack) and "none" verifies nothing.
ASYMMETRIC_ALGORITHMS = frozenset(
    {
        *(f"{family}{bits}" for family in ("RS", "PS", "ES") for bits in (256, 384, 512)),
        "ES256K",
        "EdDSA",
        "Ed25519",
        "Ed448",
    }
)

# RFC 9068 §2.1: access tokens carry `typ: at+jwt`; media types are case-insensitive and the
# `application/` prefix may be written out (RFC 7515 §4.1.9).
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})


class _AllowListRegistry(JWSRegistry):
    """joserfc's registry, minus its per-call SecurityWarning for algorithms we allowed on purpose.

    joserfc warns on every "EdDSA" verification because RFC 9864 deprecates the name in favour of
    "Ed25519"; IdPs still issue it, and the operator chose it in `auth.algorithms`.
    """

    def get_alg(self, name: str) -> JWSAlgModel:
        if self.allowed is not None and name in self.allowed and name in self.algorithms:
            return self.algorithms[name]
        return super().get_alg(name)


class JwtVerifier:
    """Turns a JWT into a Principal or raises `AuthError` with the rejection's reason."""

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        algorithms: Collection[str],
        leeway: int,
        trust_seconds: float,
        tenants: TenantRule | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.tenants = tenants or TenantRule()
        self.verifications = 0  # signature checks done; the token cache exists to keep this low
        self._trust_seconds = trust_seconds
        self._clock = clock
        self._allowed = frozenset(algorithms)
        self._registry = _AllowListRegistry(algorithms=sorted(self._allowed))
        self._claims = JWTClaimsRegistry(
            now=lambda: int(clock()),
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
        )

    async def verify(self, token: str) -> Principal:
        signed = self._parse(token)
        header = signed.headers()
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError("the token's `kid` header is not a string", "malformed")
        keys = await self.keys.key_set(kid)
        self._check_signature(signed, keys)
        claims = self._decode_claims(signed.payload)
        self._check_claims(claims)
        # A verified token is trusted (cached) no longer than the keys that verified it are, so
        # retiring a key at the IdP reaches cached tokens within one JWKS cache period.
        # (compared before any float() so an absurd integer `exp` cannot overflow)
        expires_at = float(min(claims["exp"], self._clock() + self._trust_seconds))
        scopes = scopes_from_claims(claims)
        tenant = self.tenants.tenant_of(claims)
        return Principal(sub=claims["sub"], scopes=scopes, tenant=tenant, expires_at=expires_at)

    def _parse(self, token: str) -> CompactSignature:
        try:
            signed = extract_compact(token.encode("ascii"), None, self._registry)
        except (jose.JoseError, ValueError) as exc:
            raise AuthError("the bearer token is not a JWT", "malformed") from exc
        header = signed.headers()
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._allowed:
            raise AuthError("the token's signing algorithm is not accepted", "invalid")
        # We implement no JWS extension, so any `crit` header must be refused (RFC 7515
        # §4.1.11); that includes RFC 7797 unencoded payloads, which have no place in a JWT.
        if "crit" in header or "b64" in header:
            raise AuthError(
                "the token uses a JWS extension this service does not support", "invalid"
            )
        _check_type(header.get("typ"))
        return signed

    def _check_signature(self, signed: CompactSignature, keys: KeySet) -> None:
        self.verifications += 1
        try:
            valid = validate_compact(signed, keys, registry=self._registry)
        except (jose.InvalidKeyIdError, jose.MissingKeyError) as exc:
            raise AuthError("the token's signing key is not known", "unknown_key") from exc
        except (jose.JoseError, ValueError, TypeError) as exc:
            # e.g. a key that cannot verify this algorithm, or header values of the wrong type.
            # The detail stays generic: it must not echo what the caller sent.
            raise AuthError("the token cannot be verified", "invalid") from exc
        if not valid:
            raise AuthError("the token's signature is not valid", "bad_signature")

    @staticmethod
    def _decode_claims(payload: bytes | None) -> dict[str, Any]:
        try:
            claims = msgspec.json.decode(payload or b"")
        except msgspec.DecodeError as exc:
            raise AuthError("the token's payload is not JSON", "malformed") from exc
        if not isinstance(claims, dict):
            raise AuthError("the token's payload is not a JSON object", "malformed")
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        try:
            self._claims.validate(claims)
        except jose.ExpiredTokenError as exc:
            raise AuthError("the token has expired", "expired") from exc
        except jose.MissingClaimError as exc:
            raise AuthError(f"the token lacks the claim(s) {exc.claim}", "invalid") from exc
        except jose.InvalidClaimError as exc:
            reason = {"nbf": "not_yet_valid", "iss": "wrong_issuer", "aud": "wrong_audience"}
            detail = {
                "nbf": "the token is not valid yet",
                "iss": "the token was issued by another issuer",
                "aud": "the token is meant for another audience",
            }
            raise AuthError(
                detail.get(exc.claim, f"the token's claim '{exc.claim}' is invalid"),
                reason.get(exc.claim, "invalid"),
            ) from exc


def _check_type(typ: object) -> None:
    """An absent `typ` is accepted (many IdPs omit it); any other is not an access token.

    The point is RFC 8725 §3.11 explicit typing: an OpenID Connect ID token (`typ: JWT`) signed
    by the same key, with our client as its audience, must not open the API.
    """
    if typ is None:
        return
    if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
        raise AuthError(
            "the token is not an access token: its `typ` header must be at+jwt",
            "wrong_token_type",
        )
