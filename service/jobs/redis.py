"""The Redis client shared by the job producer and the probes. It connects lazily."""

from __future__ import annotations

from arq.connections import ArqRedis

from service.jobs.serialization import deserialize, serialize
from service.settings import RedisSettings


def connect(settings: RedisSettings) -> ArqRedis:
    """A client that does not touch the network until used, so the api starts with Redis down."""
    redis: ArqRedis = ArqRedis.from_url(
        settings.url,
        socket_connect_timeout=settings.connect_timeout,
        socket_timeout=max(settings.connect_timeout, 5.0),
        health_check_interval=30,
    )
    redis.job_serializer = serialize
    redis.job_deserializer = deserialize
    redis.default_queue_name = settings.queue_name
    return redis
