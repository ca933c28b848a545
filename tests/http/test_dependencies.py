"""The api starts and stays live without PostgreSQL or Redis, and recovers by itself; its
/metrics count the readiness changes."""

from __future__ import annotations

from urllib.parse import urlsplit

import msgspec
import pytest

from service.settings import Settings
from tests.factories import ClientFactory, json_of
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.anyio

CLOSED_POSTGRES = "postgresql://postgres@127.0.0.1:1/models"
CLOSED_REDIS = "redis://127.0.0.1:1/0"


async def test_not_ready_while_dependencies_are_down(
    client_factory: ClientFactory, settings: Settings
) -> None:
    down = msgspec.structs.replace(
        settings,
        database=msgspec.structs.replace(settings.database, url=CLOSED_POSTGRES),
        redis=msgspec.structs.replace(settings.redis, url=CLOSED_REDIS),
    )
    client = await client_factory(down)
    assert (await client.get("/livez")).status_code == 200
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert json_of(response) == {
        "ready": False,
        "checks": {"postgres": "unavailable", "redis": "unavailable"},
    }


async def test_becomes_ready_when_dependencies_come_back(
    client_factory: ClientFactory, settings: Settings
) -> None:
    pg, rd = urlsplit(settings.database.url), urlsplit(settings.redis.url)
    pg_proxy = TcpProxy(pg.hostname or "127.0.0.1", pg.port or 5432)
    redis_proxy = TcpProxy(rd.hostname or "127.0.0.1", rd.port or 6379)
    pg_url = pg._replace(netloc=f"{pg.username}@127.0.0.1:{pg_proxy.port}").geturl()
    redis_url = rd._replace(netloc=f"127.0.0.1:{redis_proxy.port}").geturl()
    via_proxies = msgspec.structs.replace(
        settings,
        database=msgspec.structs.replace(settings.database, url=pg_url),
        redis=msgspec.structs.replace(settings.redis, url=redis_url),
    )
    client = await client_factory(via_proxies)
    try:
        assert (await client.get("/readyz")).status_code == 503
        await pg_proxy.start()
        await redis_proxy.start()
        response = await client.get("/readyz")
        assert response.status_code == 200, response.text
        await pg_proxy.stop()
        assert json_of(await client.get("/readyz"))["checks"]["postgres"] == "unavailable"
        await pg_proxy.start()
        assert (await client.get("/readyz")).status_code == 200
        # Flapping shows on /metrics: three changes after the first answer, ready now.
        registry = client.services.metrics.registry
        assert registry.get_sample_value("api_readiness_changes_total") == 3
        assert registry.get_sample_value("api_ready") == 1
    finally:
        await pg_proxy.stop()
        await redis_proxy.stop()


async def test_requests_get_503_with_retry_after_not_a_hang(
    client_factory: ClientFactory, settings: Settings
) -> None:
    down = msgspec.structs.replace(
        settings, database=msgspec.structs.replace(settings.database, url=CLOSED_POSTGRES)
    )
    client = await client_factory(down)
    response = await client.get("/models")
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert json_of(response)["type"] == "/problems/unavailable"
    metrics = (await client.get("/metrics")).text
    assert 'dependency_unavailable_total{dependency="postgres"}' in metrics


async def test_a_query_over_the_statement_timeout_is_504(
    client_factory: ClientFactory, settings: Settings
) -> None:
    client = await client_factory(settings)
    csv = "a,b\n" + "".join(f"{i},text-{i * 7919 % 100003}\n" for i in range(300_000))
    created = await client.post(
        "/datasets",
        params={"name": "big"},
        content=csv.encode(),
        headers={"content-type": "text/csv"},
    )
    assert created.status_code == 201, created.text
    strict = msgspec.structs.replace(
        settings, database=msgspec.structs.replace(settings.database, statement_timeout_ms=20)
    )
    impatient = await client_factory(strict)
    response = await impatient.get(
        "/datasets/big/rows", params={"where": "b ILIKE %zz%", "order_by": "b", "limit": "5"}
    )
    assert response.status_code == 504
    assert "narrow" in json_of(response)["detail"]
