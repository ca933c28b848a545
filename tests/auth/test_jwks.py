"""JWKS fetching: caching, key rotation, refetch rate limit, retired keys and IdP outages."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from service.auth.backend import BearerAuthenticator
from service.auth.errors import AuthError
from service.auth.factory import build_authenticator
from tests.auth.idp import Clock, Idp, Key, bearer, mint
from tests.factories import AuthFactory, auth_settings

pytestmark = pytest.mark.anyio


async def reason_of(auth: BearerAuthenticator, token: str) -> str:
    with pytest.raises(AuthError) as caught:
        await auth.authenticate(bearer(token))
    return caught.value.reason


async def test_keys_are_fetched_once_and_cached(
    make_auth: AuthFactory, idp: Idp, keys: dict[str, Key], clock: Clock
) -> None:
    auth = await make_auth()
    for i in range(5):
        await auth.authenticate(bearer(mint(keys["rsa1"], clock.now, sub=f"user{i}")))
        await auth.authenticate(bearer(mint(keys["ec1"], clock.now, sub=f"user{i}")))
    assert idp.jwks_requests == 1
    clock.advance(301)  # past jwks_cache_seconds
    await auth.authenticate(bearer(mint(keys["rsa1"], clock.now)))
    assert idp.jwks_requests == 2


async def test_concurrent_cold_requests_fetch_once(
    make_auth: AuthFactory, idp: Idp, keys: dict[str, Key], clock: Clock
) -> None:
    auth = await make_auth()
    tokens = [mint(keys["rsa1"], clock.now, sub=f"user{i}") for i in range(20)]
    found = await asyncio.gather(*(auth.authenticate(bearer(t)) for t in tokens))
    assert {p.sub for p in found} == {f"user{i}" for i in range(20)}
    assert idp.jwks_requests == 1


async def test_new_key_triggers_exactly_one_refetch(
    make_auth: AuthFactory, idp: Idp, keys: dict[str, Key], clock: Clock
) -> None:
    auth = await make_auth()
    await auth.authenticate(bearer(mint(keys["rsa1"], clock.now)))
    assert idp.jwks_requests == 1
    idp.keys.append(keys["rsa2"])  # the IdP rotates in a new signing key
    who = await auth.authenticate(bearer(mint(keys["rsa2"], clock.now, sub="bob")))
    assert who.sub == "bob"
    assert idp.jwks_requests == 2
    await auth.authenticate(bearer(mint(keys["rsa2"], clock.now, sub="carol")))
    assert idp.jwks_requests == 2


async def test_unknown_kid_refetches_once_then_is_accepted_once_published(
    make_auth: AuthFactory, idp: Idp, keys: dict[str, Key], clock: Clock
) -> None:
    auth = await make_auth()
    await auth.authenticate(bearer(mint(keys["rsa1"], clock.now)))
    token = mint(keys["rsa2"], clock.now)  # signed with a key the IdP has not published yet
    assert await reason_of(auth, token) == "unknown_key"
    assert idp.jwks_requests == 2  # exactly one refetch
    assert await reason_of(auth, token) == "unknown_key"
    assert idp.jwks_requests == 2  # rate limited
    idp.keys.append(keys["rsa2"])
    assert await reason_of(auth, token) == "unknown_key"  # still inside the window
    assert idp.jwks_requests == 2
    clock.advance(31)  # past jwks_min_refresh_seconds
    assert (await auth.authenticate(bearer(token))).sub == "alice"
    assert idp.jwks_requests == 3


async def test_random_kids_cannot_hammer_the_idp(
    make_auth: AuthFactory, idp: Idp, keys: dict[str, Key], clock: Clock
) -> None:
    auth = await make_auth()
    await auth.authenticate(bearer(mint(keys["rsa1"], clock.now)))
    for _ in range(50):
        token = mint(keys["rsa1"], clock.now, header={"kid": uuid.uuid4().hex})
        assert await reason_of(auth, token) == "unknown_key"
    assert idp.jwks_requests == 2  # one refetch for fifty unknown kids
    clock.advance(31)
    token = mint(keys["rsa1"], clock.now, header={"kid": "x"})
    assert await reason_of(auth, token) == "unknown_key"
    assert idp.jwks_requests == 3


async def test_retired_key_is_refused_after_the_cache_period(
    make_auth: AuthFactory, idp: Idp, keys: dict[str, Key], clock: Clock
) -> None:
    auth = await make_auth()
    cached = mint(keys["rsa1"], clock.now, exp=int(clock.now) + 3600)
    await auth.authenticate(bearer(cached))
    idp.keys.remove(keys["rsa1"])  # retired, e.g. after a compromise
    clock.advance(301)
    assert await reason_of(auth, mint(keys["rsa1"], clock.now)) == "unknown_key"
    # A token verified before the retirement is trusted no longer than the keys were cached.
    assert await reason_of(auth, cached) == "unknown_key"


async def test_idp_down_at_first_use_is_401_and_logged(
    make_auth: AuthFactory,
    idp: Idp,
    keys: dict[str, Key],
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    idp.down = True
    auth = await make_auth()
    with caplog.at_level(logging.ERROR, logger="service.auth.jwks"):
        assert await reason_of(auth, mint(keys["rsa1"], clock.now)) == "idp_unavailable"
    assert "cannot fetch the identity provider's JWKS from https://idp.test/jwks: HTTP 503" in (
        caplog.text
    )
    # Further requests inside the rate limit fail fast instead of queueing behind the IdP.
    assert await reason_of(auth, mint(keys["rsa1"], clock.now)) == "idp_unavailable"
    assert idp.jwks_requests == 1
    idp.down = False
    clock.advance(31)
    assert (await auth.authenticate(bearer(mint(keys["rsa1"], clock.now)))).sub == "alice"


async def test_unreachable_jwks_url_is_401_not_500(
    keys: dict[str, Key], caplog: pytest.LogCaptureFixture
) -> None:
    # The production HTTP client, a real connection attempt to a port nobody listens on.
    settings = auth_settings(jwks_url="http://127.0.0.1:9/jwks", http_timeout=2.0)
    auth = build_authenticator(settings)
    try:
        with caplog.at_level(logging.ERROR, logger="service.auth.jwks"):
            assert isinstance(auth, BearerAuthenticator)
            assert await reason_of(auth, mint(keys["rsa1"], 0)) == "idp_unavailable"
    finally:
        await auth.close()
    assert "cannot fetch the identity provider's JWKS from http://127.0.0.1:9/jwks" in caplog.text


async def test_short_outage_keeps_the_keys_we_have(
    make_auth: AuthFactory,
    idp: Idp,
    keys: dict[str, Key],
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    auth = await make_auth()
    await auth.authenticate(bearer(mint(keys["rsa1"], clock.now)))
    idp.down = True
    clock.advance(301)  # keys are stale and the IdP is down
    with caplog.at_level(logging.ERROR, logger="service.auth.jwks"):
        assert (await auth.authenticate(bearer(mint(keys["ec1"], clock.now)))).sub == "alice"
    assert "still using the keys fetched before" in caplog.text
    clock.advance(300)  # a whole further cache period: the old keys are no longer trusted
    assert await reason_of(auth, mint(keys["ec1"], clock.now)) == "idp_unavailable"


@pytest.mark.parametrize(
    "body",
    [
        {"keys": "not-a-list"},
        ["not", "a", "jwks"],
        {"keys": []},
        {"keys": [{"kty": "RSA", "kid": "rsa1"}]},  # no key material at all
        "private",  # a JWKS that publishes the private key: refused, never used
    ],
)
async def test_unusable_jwks_is_idp_unavailable(
    make_auth: AuthFactory,
    idp: Idp,
    keys: dict[str, Key],
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    body: object,
) -> None:
    idp.jwks_body = {"keys": [keys["rsa1"].as_dict(private=True)]} if body == "private" else body
    auth = await make_auth()
    with caplog.at_level(logging.ERROR, logger="service.auth.jwks"):
        assert await reason_of(auth, mint(keys["rsa1"], clock.now)) == "idp_unavailable"
    assert "cannot fetch the identity provider's JWKS" in caplog.text
