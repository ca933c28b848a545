"""The per-caller rate limit over the real app in jwt mode: a burst, then 429 problems with
`Retry-After` and the IETF RateLimit fields, service again after the wait; one bucket per tenant
and `sub`, shared by every app on the same Redis; and a Redis outage that lets requests through
unchecked instead of failing them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import msgspec
import pytest

from service.devtools.keys import DEV_AUDIENCE, DEV_ISSUER, mint_token, write_dev_jwks
from service.http import rate_limits
from service.settings import AuthSettings, Settings
from tests.factories import AppClient, ClientFactory, auth_settings, json_of
from tests.tcpproxy import TcpProxy, free_port

pytestmark = pytest.mark.anyio

Limited = Callable[..., Any]
POLICY = re.compile(r'^"default";q=(\d+);w=(\d+)$')
STATE = re.compile(r'^"default";r=(\d+);t=(\d+)$')


@pytest.fixture
def jwt(tmp_path: Path) -> AuthSettings:
    key_file = tmp_path / "dev-jwk.json"
    return auth_settings(
        issuer=DEV_ISSUER,
        audience=DEV_AUDIENCE,
        jwks_url="",
        jwks_file=str(write_dev_jwks(key_file)),
        dev_key_file=str(key_file),
    )


@pytest.fixture
def app_with(
    client_factory: ClientFactory, settings: Settings, jwt: AuthSettings
) -> Callable[..., Any]:
    """An app in jwt mode with `[limits]` (and any `redis` url) overridden."""

    async def build(redis_url: str | None = None, **limits: Any) -> AppClient:
        redis = settings.redis
        if redis_url is not None:
            redis = msgspec.structs.replace(redis, url=redis_url, connect_timeout=0.5)
        values = {"rate_check_timeout_ms": 5000, **limits}  # a loaded machine is no outage
        return await client_factory(
            msgspec.structs.replace(
                settings,
                auth=jwt,
                redis=redis,
                limits=msgspec.structs.replace(settings.limits, **values),
            )
        )

    return build


def bearer(jwt: AuthSettings, sub: str = "alice", tenant: str = "acme") -> dict[str, str]:
    token = mint_token(jwt, sub, ["models:read"], 600, tenant=tenant)
    return {"Authorization": f"Bearer {token}"}


def fields(response: httpx2.Response) -> tuple[tuple[int, int], tuple[int, int]]:
    """(q, w) of RateLimit-Policy and (r, t) of RateLimit; fails if either is malformed."""
    policy = POLICY.match(response.headers["ratelimit-policy"])
    state = STATE.match(response.headers["ratelimit"])
    assert policy and state, response.headers
    return (int(policy[1]), int(policy[2])), (int(state[1]), int(state[2]))


def failures(client: AppClient, reason: str) -> float:
    value = client.services.metrics.registry.get_sample_value(
        "rate_limiter_failures_total", {"reason": reason}
    )
    return value or 0.0


async def test_a_burst_then_429_with_retry_after_and_ratelimit_fields(
    app_with: Limited, jwt: AuthSettings
) -> None:
    client = await app_with(rate_per_second=0.5, burst=3)
    headers = bearer(jwt)
    served = [await client.get("/models", headers=headers) for _ in range(3)]
    assert [r.status_code for r in served] == [200, 200, 200]
    assert [fields(r) for r in served][0][0] == (3, 6)  # 3 tokens, refilled in 6 s
    assert [fields(r)[1][0] for r in served] == [2, 1, 0]
    assert all(1 <= fields(r)[1][1] <= 2 for r in served)  # a token every 2 s

    refused = await client.get("/models", headers=headers)
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = json_of(refused)
    assert problem["type"] == "/problems/too-many-requests" and problem["status"] == 429
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 2
    # The reset of RateLimit names the same moment as Retry-After.
    assert fields(refused) == ((3, 6), (0, retry_after))
    sample = client.services.metrics.registry.get_sample_value(
        "limit_refusals_total", {"limit": "rate"}
    )
    assert sample == 1.0


async def test_a_refused_caller_is_served_again_after_retry_after(
    app_with: Limited, jwt: AuthSettings
) -> None:
    client = await app_with(rate_per_second=2, burst=1)
    headers = bearer(jwt)
    assert (await client.get("/models", headers=headers)).status_code == 200
    refused = await client.get("/models", headers=headers)
    assert refused.status_code == 429
    await asyncio.sleep(int(refused.headers["retry-after"]))
    again = await client.get("/models", headers=headers)
    assert again.status_code == 200, again.text


async def test_each_caller_of_a_tenant_and_each_tenant_has_its_own_bucket(
    app_with: Limited, jwt: AuthSettings
) -> None:
    client = await app_with(rate_per_second=0.01, burst=1)
    alice, bob, other_alice = bearer(jwt), bearer(jwt, "bob"), bearer(jwt, tenant="globex")
    assert (await client.get("/models", headers=alice)).status_code == 200
    assert (await client.get("/models", headers=alice)).status_code == 429
    assert (await client.get("/models", headers=bob)).status_code == 200
    assert (await client.get("/models", headers=other_alice)).status_code == 200


async def test_two_apps_on_one_redis_draw_from_one_bucket(
    app_with: Limited, jwt: AuthSettings
) -> None:
    first = await app_with(rate_per_second=0.01, burst=3)
    second = await app_with(rate_per_second=0.01, burst=3)
    headers = bearer(jwt)
    assert (await first.get("/models", headers=headers)).status_code == 200
    assert (await second.get("/models", headers=headers)).status_code == 200
    assert (await first.get("/models", headers=headers)).status_code == 200
    assert (await second.get("/models", headers=headers)).status_code == 429
    assert (await first.get("/models", headers=headers)).status_code == 429


async def test_error_responses_of_a_limited_route_carry_the_fields_too(
    app_with: Limited, jwt: AuthSettings
) -> None:
    client = await app_with(rate_per_second=1, burst=5)
    missing = await client.get("/models/nope", headers=bearer(jwt))
    assert missing.status_code == 404
    assert fields(missing)[1][0] == 4


async def test_unauthenticated_routes_and_an_unlimited_app_carry_no_fields(
    app_with: Limited, jwt: AuthSettings
) -> None:
    limited = await app_with(rate_per_second=1, burst=5)
    livez = await limited.get("/livez")
    assert livez.status_code == 200 and "ratelimit" not in livez.headers
    refused = await limited.get("/models")  # no token: a 401 before any bucket is touched
    assert refused.status_code == 401 and "ratelimit" not in refused.headers

    unlimited = await app_with()
    assert unlimited.services.rate_limits is None
    served = [await unlimited.get("/models", headers=bearer(jwt)) for _ in range(30)]
    assert {r.status_code for r in served} == {200}
    assert all("ratelimit" not in r.headers for r in served)


async def test_with_redis_unreachable_requests_go_on_unchecked_and_are_counted(
    app_with: Limited, jwt: AuthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_limits, "PAUSE_AFTER_FAILURE", 60.0)
    client = await app_with(f"redis://127.0.0.1:{free_port()}/0", rate_per_second=1, burst=1)
    headers = bearer(jwt)
    served = [await client.get("/models", headers=headers) for _ in range(3)]
    assert [r.status_code for r in served] == [200, 200, 200]
    assert all("ratelimit" not in r.headers for r in served)
    # The first request found Redis down; the next ones did not ask it again.
    assert failures(client, "error") == 1.0
    assert failures(client, "skipped") == 2.0


async def test_limits_resume_when_redis_comes_back(
    app_with: Limited, jwt: AuthSettings, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_limits, "PAUSE_AFTER_FAILURE", 0.2)
    target = urlsplit(settings.redis.url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    try:
        url = f"redis://127.0.0.1:{proxy.port}{target.path}"
        client = await app_with(url, rate_per_second=0.01, burst=1)
        headers = bearer(jwt)
        assert (await client.get("/models", headers=headers)).status_code == 200
        assert (await client.get("/models", headers=headers)).status_code == 429

        await proxy.stop()
        cut = await client.get("/models", headers=headers)
        assert cut.status_code == 200 and "ratelimit" not in cut.headers
        assert failures(client, "error") + failures(client, "timeout") >= 1

        await proxy.start()
        await asyncio.sleep(0.3)
        back = await client.get("/models", headers=headers)
        assert back.status_code == 429, back.text  # the bucket outlived the outage
        assert fields(back)[1][0] == 0
    finally:
        await proxy.stop()


async def test_a_redis_that_never_answers_costs_one_timeout_then_is_skipped(
    app_with: Limited, jwt: AuthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_limits, "PAUSE_AFTER_FAILURE", 60.0)
    stalled: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stalled.append(writer)  # accepts the connection, reads the command, never answers
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = await app_with(
            f"redis://127.0.0.1:{port}/0",
            rate_per_second=1,
            burst=1,
            rate_check_timeout_ms=200,
        )
        headers = bearer(jwt)
        served = [await client.get("/models", headers=headers) for _ in range(3)]
        assert [r.status_code for r in served] == [200, 200, 200]
        assert all("ratelimit" not in r.headers for r in served)
        assert stalled, "the limiter never reached the stalled server"
        assert failures(client, "timeout") == 1.0
        assert failures(client, "skipped") == 2.0
    finally:
        for writer in stalled:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_retry_after_of_another_cause_comes_without_the_fields(
    app_with: Limited, jwt: AuthSettings
) -> None:
    client = await app_with(rate_per_second=1, burst=50, active_jobs_per_tenant=1)
    token = mint_token(jwt, "alice", ["admin"], 600, tenant="acme")
    headers = {"Authorization": f"Bearer {token}"}
    rows = [{"x": i, "y": i % 2} for i in range(20)]
    for name in ("a", "b"):
        model = {"name": name, "model_type": "sklearn.dummy.DummyClassifier", "target": "y"}
        assert (await client.post("/models", json=model, headers=headers)).status_code == 201
    queued = await client.post("/models/a/train", json={"data": rows}, headers=headers)
    assert queued.status_code == 202 and "ratelimit" in queued.headers
    refused = await client.post("/models/b/train", json={"data": rows}, headers=headers)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "10"
    assert "ratelimit" not in refused.headers and "ratelimit-policy" not in refused.headers
