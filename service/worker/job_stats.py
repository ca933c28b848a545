"""The job backlog and the worker's heartbeat, as gauges of the worker's metrics.

The worker's /metrics is served from a thread (prometheus_client's server), where neither the
asyncpg pool nor the async Redis client may be used, and a scrape must never wait on a
dependency. So this loop, on the worker's event loop, reads the backlog every
`metrics.job_stats_seconds` (one query and two Redis commands, whatever the scrape rate; each
bounded by a timeout) and sets gauges; a scrape reads the last figures. When PostgreSQL or Redis
does not answer, `worker_job_stats_up{source}` drops to 0 and the figures stay as last read.
The heartbeat gauge is set on every tick, so it stops moving when the event loop hangs.
"""

from __future__ import annotations

import asyncio
import logging
import time

from arq.connections import ArqRedis

from service.domain.sweeps import Sweeps
from service.settings import Settings
from service.worker.metrics import JOB_KINDS, WorkerMetrics

log = logging.getLogger(__name__)

# Beyond worker.job_timeout our own deadline should have failed an attempt; between attempts a
# job may wait up to a minute (the retry delay), or until the sweeper finds it abandoned.
OVERDUE_MARGIN_SECONDS = 60.0


class JobStats:
    def __init__(
        self, sweeps: Sweeps, redis: ArqRedis, settings: Settings, metrics: WorkerMetrics
    ) -> None:
        self.sweeps = sweeps
        self.redis = redis
        self.queue_name = settings.redis.queue_name
        self.worker = settings.worker
        self.interval = settings.metrics.job_stats_seconds
        self.tick = min(self.interval, settings.worker.heartbeat_seconds)
        self.metrics = metrics

    async def run_forever(self) -> None:
        next_read = 0.0
        while True:
            self.metrics.heartbeat.set_to_current_time()
            if time.monotonic() >= next_read:
                next_read = time.monotonic() + self.interval
                await self.refresh()
            await asyncio.sleep(self.tick)

    async def refresh(self) -> None:
        await asyncio.gather(self._read_postgres(), self._read_redis())

    async def _read_postgres(self) -> None:
        # Per attempt: `started_at` is when the first attempt started.
        w = self.worker
        overdue_after = (
            w.job_timeout + OVERDUE_MARGIN_SECONDS + w.stale_after_seconds + w.sweep_seconds
        )
        try:
            async with asyncio.timeout(self.interval):
                rows = await self.sweeps.backlog(w.stale_after_seconds, overdue_after)
        except Exception as exc:  # any failure only dims the figures; the worker carries on
            self.metrics.stats_up.labels("postgres").set(0)
            log.debug("backlog not read from postgres", extra={"error": repr(exc)})
            return
        seen = {row.kind: row for row in rows}
        for kind in {*JOB_KINDS, *seen}:
            row = seen.get(kind)
            if row is None:
                self._set_kind(kind, 0, 0, 0.0, 0, 0)
            else:
                self._set_kind(
                    kind, row.queued, row.running, row.oldest_queued_seconds, row.stale, row.overdue
                )
        self.metrics.stats_up.labels("postgres").set(1)

    async def _read_redis(self) -> None:
        try:
            async with asyncio.timeout(self.interval):
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.zcard(self.queue_name)
                    pipe.zcount(self.queue_name, "-inf", int(time.time() * 1000))
                    total, due = await pipe.execute()
        except Exception as exc:
            self.metrics.stats_up.labels("redis").set(0)
            log.debug("queue depth not read from redis", extra={"error": repr(exc)})
            return
        self.metrics.queue_depth.labels("due").set(due)
        self.metrics.queue_depth.labels("deferred").set(total - due)
        self.metrics.stats_up.labels("redis").set(1)

    def _set_kind(
        self, kind: str, queued: int, running: int, oldest: float, stale: int, overdue: int
    ) -> None:
        m = self.metrics
        m.jobs_queued.labels(kind).set(queued)
        m.jobs_running.labels(kind).set(running)
        m.oldest_queued.labels(kind).set(oldest)
        m.jobs_stuck.labels(kind, "heartbeat_stale").set(stale)
        m.jobs_stuck.labels(kind, "over_timeout").set(overdue)
