"""The verified-token cache: a reused token is verified once, and never outlives its `exp`."""

from __future__ import annotations

import pytest

from service.auth.errors import AuthError
from service.auth.principal import Principal
from service.auth.token_cache import RejectionCache, TokenCache
from tests.auth.idp import Clock, Idp, Key, bearer, mint
from tests.factories import AuthFactory

pytestmark = pytest.mark.anyio


async def test_reused_token_is_verified_once(
    make_auth: AuthFactory, idp: Idp, keys: dict[str, Key], clock: Clock
) -> None:
    auth = await make_auth()
    token = mint(keys["rsa1"], clock.now)
    for _ in range(10):
        assert (await auth.authenticate(bearer(token))).sub == "alice"
    assert auth.verifier.verifications == 1
    assert idp.jwks_requests == 1
    await auth.authenticate(bearer(mint(keys["rsa1"], clock.now, sub="bob")))
    assert auth.verifier.verifications == 2


async def test_cached_token_is_rejected_once_expired(
    make_auth: AuthFactory, keys: dict[str, Key], clock: Clock
) -> None:
    auth = await make_auth()
    token = mint(keys["rsa1"], clock.now, exp=int(clock.now) + 60)
    await auth.authenticate(bearer(token))
    clock.advance(59)
    await auth.authenticate(bearer(token))
    assert auth.verifier.verifications == 1  # still cached
    clock.advance(2)
    with pytest.raises(AuthError) as caught:
        await auth.authenticate(bearer(token))
    assert caught.value.reason == "expired"


async def test_rejected_tokens_are_not_cached(
    make_auth: AuthFactory, keys: dict[str, Key], clock: Clock
) -> None:
    auth = await make_auth()
    token = mint(keys["rsa1"], clock.now, aud="someone-else")
    for _ in range(3):
        with pytest.raises(AuthError):
            await auth.authenticate(bearer(token))
    assert auth.verifier.verifications == 3
    assert len(auth.cache) == 0


async def test_cache_is_bounded_least_recently_used_first(
    make_auth: AuthFactory, keys: dict[str, Key], clock: Clock
) -> None:
    auth = await make_auth(token_cache_size=2)
    a, b, c = (mint(keys["ec1"], clock.now, sub=name) for name in "abc")
    for token in (a, b, a, c):  # `a` was used after `b`, so `b` is the one evicted
        await auth.authenticate(bearer(token))
    assert len(auth.cache) == 2
    assert auth.verifier.verifications == 3
    await auth.authenticate(bearer(a))
    assert auth.verifier.verifications == 3
    await auth.authenticate(bearer(b))
    assert auth.verifier.verifications == 4


def test_keys_are_digests_not_tokens() -> None:
    clock = Clock()
    cache = TokenCache(10, clock)
    token = "header.payload.signature"
    cache.put(TokenCache.key(token), Principal("alice", frozenset(), "default", clock.now + 10))
    assert len(TokenCache.key(token)) == 32
    assert token.encode() not in repr(cache._entries).encode()
    assert cache.get(TokenCache.key(token)) is not None


def test_principals_without_expiry_or_already_expired_are_not_cached() -> None:
    clock = Clock()
    cache = TokenCache(10, clock)
    cache.put(b"k1", Principal("alice", frozenset(), "default", None))
    cache.put(b"k2", Principal("alice", frozenset(), "default", clock.now))
    assert len(cache) == 0


async def test_scheme_case_and_spacing_do_not_defeat_the_cache(
    make_auth: AuthFactory, keys: dict[str, Key], clock: Clock
) -> None:
    from tests.auth.idp import request_with

    auth = await make_auth()
    token = mint(keys["rsa1"], clock.now)
    for header in (f"Bearer {token}", f"bearer {token}", f"BEARER  {token} "):
        assert (await auth.authenticate(request_with(header))).sub == "alice"
    assert auth.verifier.verifications == 1


def test_rejections_are_kept_by_digest_for_their_period_only() -> None:
    clock = Clock()
    cache = RejectionCache(10, 5.0, clock)
    token = "opaque-garbage"
    cache.put(TokenCache.key(token), AuthError("the token is not active", "inactive"))
    assert token.encode() not in repr(cache._entries).encode()
    first, second = cache.get(TokenCache.key(token)), cache.get(TokenCache.key(token))
    assert first is not None and second is not None and first is not second
    assert (second.detail, second.reason, second.token_present) == (
        "the token is not active",
        "inactive",
        True,
    )
    clock.advance(5)
    assert cache.get(TokenCache.key(token)) is None
    assert len(cache) == 0


def test_transient_failures_are_not_kept_as_rejections() -> None:
    cache = RejectionCache(10, 5.0, Clock())
    cache.put(b"k", AuthError("cannot check", "idp_unavailable", transient=True))
    assert len(cache) == 0
