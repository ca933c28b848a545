"""Whatever a caller (or a compromised-but-signing IdP) puts in a token, the answer is a
Principal or an AuthError (401) — never another exception (500)."""

from __future__ import annotations

import asyncio
import json
import warnings
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import KeySet

from service.auth.backend import BearerAuthenticator
from service.auth.errors import AuthError
from service.auth.jwt_verifier import JwtVerifier
from service.auth.principal import Principal
from service.auth.token_cache import TokenCache
from tests.auth.idp import AUDIENCE, ISSUER, b64, bearer, rsa_key

KEY = rsa_key("fuzz")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
claim_names = st.sampled_from(["iss", "aud", "sub", "exp", "nbf", "iat", "jti", "scope", "scp"])
header_names = st.sampled_from(["alg", "kid", "typ", "crit", "b64", "jwk", "cty", "x5c"])


class _Keys:
    async def key_set(self, kid: str | None) -> KeySet:
        return KeySet([KEY])


def _authenticator() -> BearerAuthenticator:
    verifier = JwtVerifier(
        _Keys(),
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=["RS256", "ES256", "EdDSA"],
        leeway=30,
        trust_seconds=300,
    )
    return BearerAuthenticator(verifier, TokenCache(100))


def _outcome(token: str) -> Principal | AuthError:
    async def run() -> Principal | AuthError:
        try:
            return await _authenticator().authenticate(bearer(token))
        except AuthError as exc:
            return exc

    return asyncio.run(run())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(claim_names, json_values), st.dictionaries(header_names, json_values))
def test_unsigned_garbage_is_always_401(claims: dict[str, Any], header: dict[str, Any]) -> None:
    token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.AAAA"
    assert isinstance(_outcome(token), AuthError)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(claim_names, json_values | st.integers(min_value=10**20)))
@example({"exp": 10**400})  # a valid NumericDate that float() cannot hold
@example({"aud": [AUDIENCE, 5]})
def test_validly_signed_odd_claims_are_principal_or_401(claims: dict[str, Any]) -> None:
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": 4_000_000_000}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        token = jwt.encode(
            {"alg": "RS256", "kid": "fuzz", "typ": "at+jwt"}, {**base, **claims}, KEY
        )
    outcome = _outcome(token)
    assert isinstance(outcome, Principal | AuthError)
    if isinstance(outcome, Principal):
        assert isinstance(outcome.sub, str) and outcome.sub
