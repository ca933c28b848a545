"""The worker's heartbeat in Redis, and `python -m service worker --check`, which reads it.

Kept apart from `service.worker.app`: the check runs as an exec probe every few seconds, and
importing the worker itself (scikit-learn, the artifact store) cost it seconds of CPU, under
contention more than the probe's timeout."""

from __future__ import annotations

import os
import socket

from arq.connections import RedisSettings as ArqRedisSettings
from arq.worker import async_check_health

from service.settings import Settings


def worker_id() -> str:
    """Identifies this worker's heartbeat; a container's hostname is unique per replica."""
    return os.environ.get("SERVICE_WORKER_ID") or socket.gethostname()


def health_key(settings: Settings) -> str:
    return f"{settings.redis.queue_name}:health:{worker_id()}"


def redis_settings(settings: Settings) -> ArqRedisSettings:
    rs = ArqRedisSettings.from_dsn(settings.redis.url)
    rs.conn_timeout = int(max(1, settings.redis.connect_timeout))
    rs.conn_retries = 30  # a worker waits for Redis rather than crash-looping at start
    return rs


async def check_health(settings: Settings) -> int:
    """Exit status for the liveness probe: 0 while this worker's heartbeat is fresh."""
    rs = redis_settings(settings)
    rs.conn_retries = 0
    return await async_check_health(rs, health_key(settings), settings.redis.queue_name)
