"""Introspection mode (RFC 7662) against an in-process authorization server."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio
import httpx2
import pytest

from service.auth.backend import BearerAuthenticator
from service.auth.errors import AuthError
from service.auth.factory import build_authenticator
from service.auth.introspection import MAX_CACHE_SECONDS
from service.settings import ConfigError
from tests.auth.idp import AUDIENCE, CLIENT_ID, ISSUER, Clock, Idp, bearer
from tests.factories import AuthFactory, auth_settings

pytestmark = pytest.mark.anyio

TOKEN = "opaque-token-0123456789"


def active(clock: Clock, **overrides: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "active": True,
        "sub": "alice",
        "scope": "models:read datasets:read",
        "aud": AUDIENCE,
        "iss": ISSUER,
        "client_id": "some-client",
        "exp": int(clock.now) + 600,
    }
    answer.update(overrides)
    return {k: v for k, v in answer.items() if v is not None}


async def introspection_auth(make_auth: AuthFactory, **overrides: Any) -> BearerAuthenticator:
    return await make_auth(mode="introspection", jwks_url="", **overrides)


async def reason_of(auth: BearerAuthenticator, token: str = TOKEN) -> str:
    with pytest.raises(AuthError) as caught:
        await auth.authenticate(bearer(token))
    return caught.value.reason


async def test_active_token_is_accepted(make_auth: AuthFactory, idp: Idp, clock: Clock) -> None:
    idp.introspection[TOKEN] = active(clock)
    auth = await introspection_auth(make_auth)
    who = await auth.authenticate(bearer(TOKEN))
    assert who.sub == "alice"
    assert who.scopes == {"models:read", "datasets:read"}
    # The RFC 7662 request: form-encoded token and hint, client credentials in Basic auth.
    assert idp.last_form == {"token": [TOKEN], "token_type_hint": ["access_token"]}


async def test_audience_list_and_scp(make_auth: AuthFactory, idp: Idp, clock: Clock) -> None:
    idp.introspection[TOKEN] = active(
        clock, aud=["account", AUDIENCE], scope=None, scp=["models:write"]
    )
    auth = await introspection_auth(make_auth)
    assert (await auth.authenticate(bearer(TOKEN))).scopes == {"models:write"}


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"active": False}, "inactive"),
        ({"active": "true", "sub": "alice", "aud": AUDIENCE}, "inactive"),  # must be JSON true
        ({"aud": "another-api"}, "wrong_audience"),
        ({"aud": None}, "wrong_audience"),
        ({"iss": "https://evil.test"}, "wrong_issuer"),
        ({"exp": 1}, "expired"),
        ({"nbf": 4_000_000_000}, "not_yet_valid"),
        ({"sub": None}, "invalid"),
    ],
)
async def test_inactive_expired_or_foreign_introspection_answers_are_refused(
    make_auth: AuthFactory, idp: Idp, clock: Clock, answer: dict[str, Any], reason: str
) -> None:
    idp.introspection[TOKEN] = (
        answer if answer.get("active") is not None else active(clock, **answer)
    )
    auth = await introspection_auth(make_auth)
    assert await reason_of(auth) == reason


async def test_absurd_exp_is_bounded_by_the_cache_limit(
    make_auth: AuthFactory, idp: Idp, clock: Clock
) -> None:
    idp.introspection[TOKEN] = active(clock, exp=10**400)
    auth = await introspection_auth(make_auth)
    who = await auth.authenticate(bearer(TOKEN))
    assert who.expires_at == clock.now + MAX_CACHE_SECONDS


async def test_unknown_token_is_inactive(make_auth: AuthFactory, idp: Idp) -> None:
    auth = await introspection_auth(make_auth)
    assert await reason_of(auth, "never-issued") == "inactive"


async def test_answer_without_iss_is_accepted(
    make_auth: AuthFactory, idp: Idp, clock: Clock
) -> None:
    # RFC 7662 makes `iss` optional; only a different issuer is a sign of a foreign token.
    idp.introspection[TOKEN] = active(clock, iss=None)
    auth = await introspection_auth(make_auth)
    assert (await auth.authenticate(bearer(TOKEN))).sub == "alice"


@pytest.mark.parametrize("missing", ["issuer", "audience"])
def test_introspection_without_issuer_or_audience_refuses_to_start(missing: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_authenticator(auth_settings(mode="introspection", jwks_url="", **{missing: ""}))
    assert str(caught.value) == f'auth.mode = "introspection" needs auth.{missing}'


async def test_positive_answers_are_cached_no_longer_than_exp(
    make_auth: AuthFactory, idp: Idp, clock: Clock
) -> None:
    idp.introspection[TOKEN] = active(clock, exp=int(clock.now) + 20)
    auth = await introspection_auth(make_auth)
    for _ in range(5):
        await auth.authenticate(bearer(TOKEN))
    assert idp.introspection_requests == 1
    clock.advance(21)
    assert await reason_of(auth) == "expired"
    assert idp.introspection_requests == 2


async def test_revocation_is_seen_within_the_cache_bound(
    make_auth: AuthFactory, idp: Idp, clock: Clock
) -> None:
    idp.introspection[TOKEN] = active(clock, exp=int(clock.now) + 3600)
    auth = await introspection_auth(make_auth)
    await auth.authenticate(bearer(TOKEN))
    idp.introspection[TOKEN] = {"active": False}  # revoked at the authorization server
    clock.advance(MAX_CACHE_SECONDS + 1)
    assert await reason_of(auth) == "inactive"


async def test_repeated_bad_token_costs_one_idp_call_per_rejection_period(
    make_auth: AuthFactory, idp: Idp, clock: Clock
) -> None:
    auth = await introspection_auth(make_auth, rejected_token_cache_seconds=5)
    for _ in range(20):
        assert await reason_of(auth, "garbage-token") == "inactive"
    assert idp.introspection_requests == 1
    clock.advance(4.9)
    assert await reason_of(auth, "garbage-token") == "inactive"
    assert idp.introspection_requests == 1
    clock.advance(0.2)
    assert await reason_of(auth, "garbage-token") == "inactive"
    assert idp.introspection_requests == 2


@pytest.mark.parametrize("answer", ["inactive", "active"])
async def test_concurrent_requests_with_one_token_share_one_idp_call(
    make_auth: AuthFactory, idp: Idp, clock: Clock, answer: str
) -> None:
    if answer == "active":
        idp.introspection[TOKEN] = active(clock)
    idp.hold = asyncio.Event()
    auth = await introspection_auth(make_auth)
    outcomes: list[str] = []

    async def call() -> None:
        try:
            outcomes.append((await auth.authenticate(bearer(TOKEN))).sub)
        except AuthError as exc:
            outcomes.append(exc.reason)

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(call)
        await anyio.wait_all_tasks_blocked()  # all ten are waiting on the held answer
        idp.hold.set()
    assert outcomes == [{"inactive": "inactive", "active": "alice"}[answer]] * 10
    assert idp.introspection_requests == 1


async def test_a_caller_going_away_does_not_cancel_the_shared_call(
    make_auth: AuthFactory, idp: Idp, clock: Clock
) -> None:
    idp.introspection[TOKEN] = active(clock)
    idp.hold = asyncio.Event()
    auth = await introspection_auth(make_auth)
    async with anyio.create_task_group() as leaver:
        leaver.start_soon(auth.authenticate, bearer(TOKEN))
        await anyio.wait_all_tasks_blocked()  # its introspection call waits on the IdP
        leaver.cancel_scope.cancel()  # like a client that disconnects
    results: list[str] = []

    async def stay() -> None:
        results.append((await auth.authenticate(bearer(TOKEN))).sub)

    async with anyio.create_task_group() as group:
        group.start_soon(stay)
        await anyio.wait_all_tasks_blocked()
        idp.hold.set()
    assert results == ["alice"]
    assert idp.introspection_requests == 1  # the stayer joined the call the leaver started


async def test_a_rejection_is_remembered_with_its_reason(
    make_auth: AuthFactory, idp: Idp, clock: Clock
) -> None:
    idp.introspection[TOKEN] = active(clock, aud="another-api")
    auth = await introspection_auth(make_auth)
    assert [await reason_of(auth) for _ in range(3)] == ["wrong_audience"] * 3
    assert idp.introspection_requests == 1


async def test_a_token_refused_then_activated_is_accepted_after_the_period(
    make_auth: AuthFactory, idp: Idp, clock: Clock
) -> None:
    auth = await introspection_auth(make_auth, rejected_token_cache_seconds=5)
    assert await reason_of(auth) == "inactive"
    idp.introspection[TOKEN] = active(clock)
    assert await reason_of(auth) == "inactive"  # still remembered
    clock.advance(5)
    assert (await auth.authenticate(bearer(TOKEN))).sub == "alice"
    assert idp.introspection_requests == 2


async def test_rejections_are_not_remembered_when_turned_off(
    make_auth: AuthFactory, idp: Idp, clock: Clock
) -> None:
    auth = await introspection_auth(make_auth, rejected_token_cache_seconds=0)
    assert await reason_of(auth) == "inactive"
    idp.introspection[TOKEN] = active(clock)
    assert (await auth.authenticate(bearer(TOKEN))).sub == "alice"
    assert idp.introspection_requests == 2


async def test_an_unreachable_idp_is_not_remembered_as_a_rejection(
    make_auth: AuthFactory, idp: Idp, clock: Clock
) -> None:
    idp.introspection[TOKEN] = active(clock)
    idp.down = True
    auth = await introspection_auth(make_auth)
    assert await reason_of(auth) == "idp_unavailable"
    idp.down = False
    assert (await auth.authenticate(bearer(TOKEN))).sub == "alice"
    assert idp.introspection_requests == 2


async def test_remembered_rejections_are_bounded_least_recently_used_first(
    make_auth: AuthFactory, idp: Idp
) -> None:
    auth = await introspection_auth(make_auth, token_cache_size=2)
    for token in ("bad-a", "bad-b", "bad-a", "bad-c"):  # `bad-b` is the one evicted
        await reason_of(auth, token)
    assert auth.rejections is not None and len(auth.rejections) == 2
    assert idp.introspection_requests == 3
    await reason_of(auth, "bad-a")
    assert idp.introspection_requests == 3
    await reason_of(auth, "bad-b")
    assert idp.introspection_requests == 4


async def test_jwt_mode_remembers_no_rejections(make_auth: AuthFactory) -> None:
    # There a refusal costs a local signature check at most; nothing to spare the IdP.
    assert (await make_auth()).rejections is None


@pytest.mark.parametrize(
    ("change", "logged"),
    [
        ({"down": True}, "HTTP 503"),
        ({"secret": "wrong"}, "HTTP 401"),  # our own client credentials are wrong
    ],
)
async def test_server_failures_are_401_and_logged(
    idp: Idp,
    idp_client: httpx2.AsyncClient,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    change: dict[str, Any],
    logged: str,
) -> None:
    idp.introspection[TOKEN] = active(clock)
    idp.down = bool(change.get("down"))
    settings = auth_settings(
        mode="introspection",
        jwks_url="",
        introspection_client_id=CLIENT_ID,
        introspection_client_secret=change.get("secret", "s3cret"),
    )
    auth = build_authenticator(settings, idp_client, clock=clock)
    assert isinstance(auth, BearerAuthenticator)
    with caplog.at_level(logging.ERROR, logger="service.auth.introspection"):
        assert await reason_of(auth) == "idp_unavailable"
    assert f"token introspection at https://idp.test/introspect failed: {logged}" in caplog.text
