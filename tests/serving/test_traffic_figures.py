"""Traffic figures on a real Redis: what several api replicas count adds up, read from any of
them; latency percentiles come from log-spaced buckets, never below the true value and at most
20% above it; shadows report agreement and dropped requests; each traffic revision and tenant
has its own figures; counts made while Redis is away are kept and delivered once it is back;
every key expires."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from service.domain.errors import Unavailable
from service.serving.traffic_figures import (
    BUCKETS,
    GROWTH,
    FiguresKey,
    TrafficFigures,
    bucket_of,
    percentile_ms,
)
from tests.factories import Servers, wait_until
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.anyio

KEY: FiguresKey = ("acme", 7, 1)
Replica = Callable[..., TrafficFigures]


@pytest.fixture
async def redis(servers: Servers, redis_cleanup: None) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(servers.redis)
    yield client
    await client.aclose()


@pytest.fixture
async def replica(
    redis: aioredis.Redis, queue_name: str
) -> AsyncIterator[Callable[..., TrafficFigures]]:
    """Builds the figures of one api replica; all of them share this test's key prefix."""
    built: list[TrafficFigures] = []

    def build(client: aioredis.Redis | None = None, **options: Any) -> TrafficFigures:
        figures = TrafficFigures(
            client if client is not None else redis, key_prefix=f"{queue_name}:traffic:", **options
        )
        built.append(figures)
        return figures

    yield build
    for figures in built:
        await figures.close()


def between(true_ms: float, reported: float | None) -> bool:
    """Whether a reported percentile is the upper edge of the true latency's bucket."""
    return reported is not None and true_ms < reported <= true_ms * GROWTH * (1 + 1e-9)


async def test_two_replicas_recording_the_same_version_read_back_the_sum_from_either(
    replica: Replica,
) -> None:
    first, second = replica(), replica()
    for _ in range(3):
        first.record(KEY, 3, 0.010, rows=2, ok=True)
    second.record(KEY, 3, 0.010, rows=5, ok=False)
    second.record(KEY, 4, 0.500, rows=1, ok=True)

    await second.flush()
    from_first = await first.read(KEY)  # flushes its own counts first
    from_second = await second.read(KEY)

    assert from_first == from_second
    three, four = from_first[3], from_first[4]
    assert (three.role, three.requests, three.errors, three.rows) == ("split", 4, 1, 11)
    assert (four.role, four.requests, four.errors, four.rows) == ("split", 1, 0, 1)
    assert three.agreement is None and three.dropped == 0
    assert between(10, three.p50_ms) and between(10, three.p99_ms)
    assert between(500, four.p50_ms)


async def test_the_sum_of_two_replicas_histograms_gives_the_percentiles_of_all_requests(
    replica: Replica,
) -> None:
    fast, slow = replica(), replica()
    for _ in range(98):
        fast.record(KEY, 3, 0.010, rows=1, ok=True)
    for _ in range(2):
        slow.record(KEY, 3, 1.0, rows=1, ok=True)
    await slow.flush()
    figures = (await fast.read(KEY))[3]
    assert between(10, figures.p50_ms)
    assert between(1000, figures.p99_ms)  # rank 99 of 100 is a slow one

    # With one slow request in 100, rank 99 is a fast one: nearest rank, no interpolation.
    other: FiguresKey = ("acme", 7, 2)
    for _ in range(99):
        fast.record(other, 3, 0.010, rows=1, ok=True)
    slow.record(other, 3, 1.0, rows=1, ok=True)
    await slow.flush()
    assert between(10, (await fast.read(other))[3].p99_ms)


@given(st.floats(min_value=50e-6, max_value=120.0))
def test_a_percentile_is_never_below_the_true_latency_and_at_most_20_percent_above(
    seconds: float,
) -> None:
    buckets = [0] * BUCKETS
    buckets[bucket_of(seconds)] += 1
    reported = percentile_ms(buckets, 0.5)
    assert reported is not None
    # The report is rounded to the microsecond.
    assert seconds * 1000 - 0.0005 <= reported <= seconds * 1000 * GROWTH + 0.0005


def test_latencies_beyond_the_buckets_report_the_outermost_edges() -> None:
    buckets = [0] * BUCKETS
    for seconds in (0.0, 10e-6, -1.0, 600.0, math.inf, math.nan):
        buckets[bucket_of(seconds)] += 1
    assert percentile_ms(buckets, 0.5) == 0.05  # "under 50 µs"
    last = percentile_ms(buckets, 0.99)
    assert last is not None and 120_000 <= last <= 120_000 * GROWTH
    assert percentile_ms([0] * BUCKETS, 0.5) is None


async def test_a_record_with_a_value_of_the_wrong_type_is_dropped_whole_and_never_raises(
    replica: Replica,
) -> None:
    figures = replica()
    figures.record(KEY, 3, cast(float, "slow"), rows=1, ok=True)
    figures.record_shadow(KEY, 5, 0.01, rows=cast(int, None), ok=True, compared=1, agreeing=1)
    figures.record(KEY, 3, 0.01, rows=1, ok=True)
    figures.record_shadow(KEY, 5, 0.01, rows=1, ok=True, compared=1, agreeing=1)
    shown = await figures.read(KEY)
    assert (shown[3].requests, shown[3].rows) == (1, 1)
    assert (shown[5].requests, shown[5].rows, shown[5].agreement) == (1, 1, 1.0)


async def test_a_shadow_reports_agreeing_rows_over_compared_rows_and_its_dropped_requests(
    replica: Replica,
) -> None:
    first, second = replica(), replica()
    first.record(KEY, 3, 0.01, rows=10, ok=True)
    first.record_shadow(KEY, 5, 0.02, rows=10, ok=True, compared=10, agreeing=9)
    second.record_shadow(KEY, 5, 0.02, rows=6, ok=True, compared=6, agreeing=3)
    second.record_shadow(KEY, 5, 0.02, rows=4, ok=False, compared=0, agreeing=0)
    second.record_dropped(KEY, 5)
    second.record_dropped(KEY, 5)
    await second.flush()

    shadow = (await first.read(KEY))[5]
    assert shadow.role == "shadow"
    assert (shadow.requests, shadow.errors, shadow.rows, shadow.dropped) == (3, 1, 20, 2)
    assert shadow.agreement == pytest.approx(12 / 16)
    assert between(20, shadow.p50_ms)


async def test_a_shadow_that_compared_nothing_has_no_agreement_and_no_latency(
    replica: Replica,
) -> None:
    figures = replica()
    figures.record_dropped(KEY, 5)
    shadow = (await figures.read(KEY))[5]
    assert (shadow.role, shadow.requests, shadow.dropped) == ("shadow", 0, 1)
    assert shadow.agreement is None
    assert shadow.p50_ms is None and shadow.p99_ms is None


async def test_a_new_revision_and_another_tenant_or_model_start_from_nothing(
    replica: Replica,
) -> None:
    figures = replica()
    figures.record(KEY, 3, 0.01, rows=1, ok=True)
    assert (await figures.read(KEY))[3].requests == 1
    tenant, model, revision = KEY
    assert await figures.read((tenant, model, revision + 1)) == {}
    assert await figures.read(("other", model, revision)) == {}
    assert await figures.read((tenant, model + 1, revision)) == {}
    assert (await figures.read(KEY))[3].requests == 1


async def test_every_key_written_expires_after_the_ttl(
    replica: Replica, redis: aioredis.Redis, queue_name: str
) -> None:
    figures = replica(ttl_seconds=3600)
    figures.record(KEY, 3, 0.01, rows=1, ok=True)
    figures.record_dropped(KEY, 5)
    await figures.flush()
    keys = [key async for key in redis.scan_iter(match=f"{queue_name}:traffic:*")]
    assert sorted(k.decode().rsplit(":", 1)[1] for k in keys) == ["3", "5", "versions"]
    for key in keys:
        assert 0 < await redis.ttl(key) <= 3600


async def test_counts_made_while_redis_is_away_are_kept_and_delivered_once_it_is_back(
    replica: Replica, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    target = urlsplit(servers.redis)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    through_proxy = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{proxy.port}{target.path}", socket_connect_timeout=0.5
    )
    try:
        cut, direct = replica(through_proxy), replica()
        cut.record(KEY, 3, 0.01, rows=1, ok=True)
        await cut.flush()

        await proxy.stop()
        with caplog.at_level(logging.WARNING, logger="service.serving.traffic_figures"):
            cut.record(KEY, 3, 0.01, rows=2, ok=False)
            await cut.flush()
            cut.record_shadow(KEY, 5, 0.02, rows=2, ok=True, compared=2, agreeing=2)
            await cut.flush()
            with pytest.raises(Unavailable) as refused:
                await cut.read(KEY)
        assert refused.value.dependency == "redis"
        warnings = [r for r in caplog.records if r.name == "service.serving.traffic_figures"]
        assert len(warnings) == 1, "one warning per outage, not per flush"
        assert (await direct.read(KEY))[3].requests == 1

        await proxy.start()
        await cut.flush()
        delivered = await direct.read(KEY)
        assert (delivered[3].requests, delivered[3].errors, delivered[3].rows) == (2, 1, 3)
        assert (delivered[5].requests, delivered[5].agreement) == (1, 1.0)
        await cut.flush()  # nothing is sent twice
        assert (await direct.read(KEY))[3].requests == 2
    finally:
        await through_proxy.aclose()
        await proxy.stop()


async def test_the_background_task_delivers_counts_and_close_sends_the_rest(
    replica: Replica,
) -> None:
    writer, reader = replica(flush_seconds=0.05), replica()
    await writer.start()
    writer.record(KEY, 3, 0.01, rows=1, ok=True)

    async def delivered() -> bool:
        figures = await reader.read(KEY)
        return 3 in figures and figures[3].requests == 1

    await wait_until(delivered, 10, "the background flush")
    writer.record(KEY, 3, 0.01, rows=1, ok=True)
    await writer.close()
    assert (await reader.read(KEY))[3].requests == 2


async def test_close_gives_up_on_a_redis_that_never_answers(
    replica: Replica, caplog: pytest.LogCaptureFixture
) -> None:
    stalled: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stalled.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}")
    try:
        figures = replica(client, close_timeout=0.1)
        figures.record(KEY, 3, 0.01, rows=1, ok=True)
        with caplog.at_level(logging.WARNING, logger="service.serving.traffic_figures"):
            await figures.close()
        assert "not delivered before shutdown" in caplog.text
    finally:
        for writer in stalled:
            writer.close()
        server.close()
        await client.aclose()
