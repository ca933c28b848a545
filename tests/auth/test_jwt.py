"""JWT mode, one authenticator call at a time: what is let in and why everything else is not."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest

from service.auth.errors import AuthError
from service.auth.principal import Principal
from tests.auth.idp import (
    AUDIENCE,
    Clock,
    Idp,
    Key,
    b64,
    bearer,
    claims,
    ed_key,
    hs256_with_public_key,
    mint,
    request_with,
    unsigned,
)
from tests.factories import AuthFactory

pytestmark = pytest.mark.anyio


async def rejection(auth_factory: AuthFactory, token: str) -> AuthError:
    auth = await auth_factory()
    with pytest.raises(AuthError) as caught:
        await auth.authenticate(bearer(token))
    return caught.value


@pytest.mark.parametrize("kid", ["rsa1", "ec1"])
async def test_valid_token_gives_its_subject_and_scopes(
    make_auth: AuthFactory, keys: dict[str, Key], clock: Clock, kid: str
) -> None:
    auth = await make_auth()
    token = mint(keys[kid], clock.now, sub="alice", scope="models:read models:predict")
    who = await auth.authenticate(bearer(token))
    assert who.sub == "alice"
    assert who.scopes == {"models:read", "models:predict"}
    assert who.allows("models:predict") and not who.allows("models:write")


async def test_eddsa_token_is_accepted_without_a_warning(
    make_auth: AuthFactory, idp: Idp, clock: Clock
) -> None:
    # joserfc warns on every "EdDSA" use (RFC 9864); with filterwarnings=error that would raise.
    key = ed_key("ed1")
    idp.keys.append(key)
    auth = await make_auth()
    assert (await auth.authenticate(bearer(mint(key, clock.now)))).sub == "alice"


async def test_admin_scope_allows_everything(
    make_auth: AuthFactory, keys: dict[str, Key], clock: Clock
) -> None:
    auth = await make_auth()
    who = await auth.authenticate(bearer(mint(keys["rsa1"], clock.now, scope="admin")))
    assert all(who.allows(s) for s in ("models:write", "datasets:write", "models:predict"))


@pytest.mark.parametrize(
    "scp",
    [
        ["models:read", "datasets:write"],  # Okta-style list
        "models:read datasets:write",  # Entra ID sends a space-separated string
    ],
)
async def test_scopes_are_read_from_an_scp_claim_as_a_list_or_a_string(
    make_auth: AuthFactory, keys: dict[str, Key], clock: Clock, scp: list[str] | str
) -> None:
    auth = await make_auth()
    token = mint(keys["ec1"], clock.now, scope=None, scp=scp)
    who = await auth.authenticate(bearer(token))
    assert who.scopes == {"models:read", "datasets:write"}


async def test_unknown_scopes_are_dropped(
    make_auth: AuthFactory, keys: dict[str, Key], clock: Clock
) -> None:
    auth = await make_auth()
    token = mint(keys["rsa1"], clock.now, scope="openid profile models:read")
    assert (await auth.authenticate(bearer(token))).scopes == {"models:read"}


async def test_audience_list_containing_ours_is_accepted(
    make_auth: AuthFactory, keys: dict[str, Key], clock: Clock
) -> None:
    auth = await make_auth()
    token = mint(keys["rsa1"], clock.now, aud=["account", AUDIENCE])
    assert (await auth.authenticate(bearer(token))).sub == "alice"


@pytest.mark.parametrize(
    ("header", "reason", "token_present"),
    [
        (None, "missing", False),
        ("Basic YWxpY2U6cGFzc3dvcmQ=", "malformed", False),
        ("Bearer", "malformed", True),
        ("Bearer    ", "malformed", True),
        ("Bearer two tokens", "malformed", True),
        ("Bearer tök€n", "malformed", True),
        ("Bearer " + "a" * 20_000, "malformed", True),
        ("Bearer garbage", "malformed", True),
        ("Bearer a.b.c", "malformed", True),
        ("Bearer a.b.c.d.e", "malformed", True),
    ],
)
async def test_missing_or_malformed_credentials(
    make_auth: AuthFactory, idp: Idp, header: str | None, reason: str, token_present: bool
) -> None:
    auth = await make_auth()
    with pytest.raises(AuthError) as caught:
        await auth.authenticate(request_with(header))
    assert (caught.value.reason, caught.value.token_present) == (reason, token_present)
    assert idp.jwks_requests == 0  # rejected before any key lookup


def _tampered(keys: dict[str, Key], now: float) -> str:
    header, _, signature = mint(keys["rsa1"], now, scope="models:read").split(".")
    payload = b64(json.dumps({"iss": "x", "sub": "alice", "scope": "admin"}).encode())
    return f"{header}.{payload}.{signature}"


def _signed_by_stranger(keys: dict[str, Key], now: float) -> str:
    # Same kid as a published key, different private key: the signature cannot verify.
    from tests.auth.idp import rsa_key

    return mint(rsa_key("rsa1"), now)


Maker = Callable[[dict[str, Key], float], str]
CASES: list[tuple[str, Maker, str]] = [
    ("expired", lambda k, now: mint(k["rsa1"], now, exp=int(now) - 1), "expired"),
    ("nbf in the future", lambda k, now: mint(k["rsa1"], now, nbf=int(now) + 60), "not_yet_valid"),
    ("iat in the future", lambda k, now: mint(k["rsa1"], now, iat=int(now) + 60), "invalid"),
    ("wrong issuer", lambda k, now: mint(k["rsa1"], now, iss="https://evil.test"), "wrong_issuer"),
    ("wrong audience", lambda k, now: mint(k["ec1"], now, aud="other-api"), "wrong_audience"),
    ("no exp", lambda k, now: mint(k["rsa1"], now, exp=None), "invalid"),
    ("no sub", lambda k, now: mint(k["rsa1"], now, sub=None), "invalid"),
    ("empty sub", lambda k, now: mint(k["rsa1"], now, sub=""), "invalid"),
    ("tampered payload", _tampered, "bad_signature"),
    ("signed by another key", _signed_by_stranger, "bad_signature"),
    ("unknown kid", lambda k, now: mint(k["rsa2"], now), "unknown_key"),
    (
        # The JWKS labels rsa1 as RS256, so no key fits an ES256 token naming it.
        "ES256 header naming an RS256 key",
        lambda k, now: mint(k["ec1"], now, header={"kid": "rsa1"}),
        "unknown_key",
    ),
    (
        "alg none",
        lambda k, now: unsigned({"alg": "none", "typ": "JWT"}, {"sub": "alice"}) + ".",
        "invalid",
    ),
    (
        "HS256 keyed with the RSA public key",
        lambda k, now: hs256_with_public_key(k["rsa1"], now),
        "invalid",
    ),
    (
        "RS512 not in the allow-list",
        lambda k, now: unsigned({"alg": "RS512", "kid": "rsa1"}, {"sub": "alice"}) + ".AAAA",
        "invalid",
    ),
]


@pytest.mark.parametrize(("name", "make", "reason"), CASES, ids=[c[0] for c in CASES])
async def test_each_kind_of_bad_token_is_rejected_with_its_reason(
    make_auth: AuthFactory,
    keys: dict[str, Key],
    clock: Clock,
    name: str,
    make: Maker,
    reason: str,
) -> None:
    error = await rejection(make_auth, make(keys, clock.now))
    assert error.reason == reason, error.detail
    assert error.token_present  # → WWW-Authenticate: Bearer error="invalid_token"


async def test_disallowed_algorithms_never_reach_the_idp(
    make_auth: AuthFactory, idp: Idp, keys: dict[str, Key], clock: Clock
) -> None:
    auth = await make_auth()
    for token in (
        unsigned({"alg": "none"}, {"sub": "alice"}) + ".",
        hs256_with_public_key(keys["rsa1"], clock.now),
    ):
        with pytest.raises(AuthError):
            await auth.authenticate(bearer(token))
    assert idp.jwks_requests == 0


async def test_leeway_tolerates_small_clock_skew(
    make_auth: AuthFactory, keys: dict[str, Key], clock: Clock
) -> None:
    auth = await make_auth(leeway_seconds=30)
    token = mint(keys["rsa1"], clock.now, exp=int(clock.now) - 10, nbf=int(clock.now) + 10)
    who = await auth.authenticate(bearer(token))
    assert isinstance(who, Principal)
    # Accepted only thanks to the leeway, so it must not be cached beyond its real `exp`.
    assert who.expires_at is not None and who.expires_at <= clock.now


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+JWT"])
async def test_access_token_types_are_accepted(
    make_auth: AuthFactory, keys: dict[str, Key], clock: Clock, typ: str
) -> None:
    auth = await make_auth()
    token = mint(keys["rsa1"], clock.now, header={"typ": typ})
    assert (await auth.authenticate(bearer(token))).sub == "alice"


async def test_token_without_typ_is_accepted(
    make_auth: AuthFactory, keys: dict[str, Key], clock: Clock
) -> None:
    auth = await make_auth()
    token = mint(keys["ec1"], clock.now, header={"typ": None})
    assert "typ" not in json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert (await auth.authenticate(bearer(token))).sub == "alice"


@pytest.mark.parametrize(
    "typ",
    [
        "JWT",  # an OpenID Connect ID token, signed by the same key for the same audience
        "id_token+jwt",
        "at+jwt+extra",
        "application/jwt",
        "",
        5,
        ["at+jwt"],
    ],
)
async def test_other_token_types_are_refused_before_any_key_lookup(
    make_auth: AuthFactory, idp: Idp, keys: dict[str, Key], clock: Clock, typ: object
) -> None:
    auth = await make_auth()
    if isinstance(typ, str):
        token = mint(keys["rsa1"], clock.now, header={"typ": typ})
    else:  # joserfc will not sign a non-string `typ`; the check comes before the signature's
        token = unsigned({"alg": "RS256", "kid": "rsa1", "typ": typ}, claims(clock.now)) + ".AAAA"
    with pytest.raises(AuthError) as caught:
        await auth.authenticate(bearer(token))
    assert caught.value.reason == "wrong_token_type"
    assert caught.value.detail == (
        "the token is not an access token: its `typ` header must be at+jwt"
    )
    assert caught.value.token_present
    assert idp.jwks_requests == 0
