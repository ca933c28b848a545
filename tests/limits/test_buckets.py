"""The token bucket script on a real Redis: a burst, then refusals with the wait until the next
token; a refill after that wait; one atomic decision per take however many run at once; and no
key left behind once a bucket is full again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from service.limits.buckets import TokenBuckets
from tests.factories import Servers

pytestmark = pytest.mark.anyio


@pytest.fixture
async def redis(
    servers: Servers, queue_name: str, redis_cleanup: None
) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(servers.redis)
    yield client
    await client.aclose()


def key(queue_name: str) -> str:
    return f"{queue_name}:rate:{uuid.uuid4().hex}"


async def test_a_burst_is_served_then_refused_with_the_wait_for_the_next_token(
    redis: aioredis.Redis, queue_name: str
) -> None:
    buckets = TokenBuckets(redis, rate_per_second=0.5, burst=3)
    bucket = key(queue_name)
    taken = [await buckets.take(bucket) for _ in range(4)]
    assert [d.allowed for d in taken] == [True, True, True, False]
    assert [d.remaining for d in taken] == [2, 1, 0, 0]
    # One token comes back every 2 s: the refusal says so, rounded up to whole seconds.
    refused = taken[-1]
    assert 0 < refused.wait_seconds <= 2.0
    assert refused.wait_whole_seconds in (1, 2)
    assert all(0 < d.wait_seconds <= 2.0 for d in taken)


async def test_a_refused_caller_is_served_again_after_the_wait(
    redis: aioredis.Redis, queue_name: str
) -> None:
    buckets = TokenBuckets(redis, rate_per_second=5, burst=1)
    bucket = key(queue_name)
    assert (await buckets.take(bucket)).allowed
    refused = await buckets.take(bucket)
    assert not refused.allowed
    await asyncio.sleep(refused.wait_seconds + 0.01)
    assert (await buckets.take(bucket)).allowed


async def test_concurrent_takes_never_hand_out_more_than_the_burst(
    redis: aioredis.Redis, queue_name: str
) -> None:
    buckets = TokenBuckets(redis, rate_per_second=0.001, burst=7)
    bucket = key(queue_name)
    decisions = await asyncio.gather(*(buckets.take(bucket) for _ in range(40)))
    assert sum(d.allowed for d in decisions) == 7
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(7))


async def test_callers_have_separate_buckets(redis: aioredis.Redis, queue_name: str) -> None:
    buckets = TokenBuckets(redis, rate_per_second=0.001, burst=1)
    first, second = key(queue_name), key(queue_name)
    assert (await buckets.take(first)).allowed
    assert not (await buckets.take(first)).allowed
    assert (await buckets.take(second)).allowed


async def test_the_key_expires_when_the_bucket_is_full_again(
    redis: aioredis.Redis, queue_name: str
) -> None:
    buckets = TokenBuckets(redis, rate_per_second=10, burst=5)
    bucket = key(queue_name)
    for _ in range(3):
        await buckets.take(bucket)
    # Three tokens are missing, and come back in 0.3 s: then the key is gone.
    ttl = await redis.pttl(bucket)
    assert 0 < ttl <= 300
    # A refusal writes nothing, so it cannot extend the key's life.
    drained = TokenBuckets(redis, rate_per_second=0.001, burst=1)
    other = key(queue_name)
    await drained.take(other)
    before = await redis.get(other)
    assert not (await drained.take(other)).allowed
    assert await redis.get(other) == before


def test_a_bucket_needs_a_rate_and_a_burst() -> None:
    with pytest.raises(ValueError):
        TokenBuckets(object(), rate_per_second=0, burst=1)
    with pytest.raises(ValueError):
        TokenBuckets(object(), rate_per_second=1, burst=0)


async def test_concurrent_takes_share_one_connection(
    redis: aioredis.Redis, queue_name: str
) -> None:
    # A slow refill: on a busy machine a millisecond between takes would refill 1000/s buckets.
    buckets = TokenBuckets(redis, rate_per_second=0.001, burst=1000)
    keys = [key(queue_name) for _ in range(8)]
    decisions = await asyncio.gather(*(buckets.take(keys[i % 8]) for i in range(64)))
    assert all(d.allowed for d in decisions)
    assert sorted(d.remaining for d in decisions) == sorted(list(range(992, 1000)) * 8)
    pool = redis.connection_pool
    # Batched round trips: not one connection per take in flight.
    assert len(pool._available_connections) + len(pool._in_use_connections) <= 2


async def test_a_redis_that_forgot_the_script_is_taught_it_again(
    redis: aioredis.Redis, queue_name: str
) -> None:
    """As after a Redis restart: a NOSCRIPT take did not run, so it is sent again."""
    buckets = TokenBuckets(redis, rate_per_second=0.001, burst=5)
    bucket = key(queue_name)
    assert (await buckets.take(bucket)).remaining == 4
    await redis.script_flush()
    decisions = await asyncio.gather(*(buckets.take(bucket) for _ in range(3)))
    assert sorted(d.remaining for d in decisions) == [1, 2, 3]
    await redis.script_flush()
    assert (await buckets.take(bucket)).remaining == 0
    assert not (await buckets.take(bucket)).allowed


async def test_a_stalled_round_trip_fails_its_takes_with_a_timeout(queue_name: str) -> None:
    stalled: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stalled.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    try:
        buckets = TokenBuckets(client, rate_per_second=1, burst=1, timeout=0.1)
        outcomes = await asyncio.gather(
            *(buckets.take(key(queue_name)) for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(o, TimeoutError) for o in outcomes), outcomes
    finally:
        for writer in stalled:
            writer.close()
        server.close()
        await server.wait_closed()
        await client.aclose()
