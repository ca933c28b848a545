"""What every job of a worker process shares: settings, the job use cases, Redis, metrics; and
what runs beside the jobs: the sweeper and the webhook deliverer."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from arq.connections import ArqRedis

from service.domain.job_services import JobServices
from service.jobs.queue import JobQueue
from service.jobs.redis import connect as connect_redis
from service.settings import Settings
from service.webhooks.delivery import Deliverer
from service.webhooks.secrets import SecretBox
from service.worker import child
from service.worker.execution import JobRunner
from service.worker.job_stats import JobStats
from service.worker.metrics import WorkerMetrics
from service.worker.sweeper import Sweeper

if TYPE_CHECKING:
    from service.tracing.provider import Tracing


@dataclass
class WorkerContext:
    settings: Settings
    services: JobServices
    redis: ArqRedis
    metrics: WorkerMetrics
    runner: JobRunner
    sweeper_task: asyncio.Task[None] | None = None
    warm_up_task: asyncio.Task[None] | None = None
    stats_task: asyncio.Task[None] | None = None
    deliverer: Deliverer | None = None
    tracing: Tracing | None = None

    @classmethod
    async def start(
        cls, settings: Settings, worker_id: str, sweep: bool = True, deliver: bool = True
    ) -> WorkerContext:
        services = await JobServices.start(settings)
        tracing = None
        if settings.tracing.enabled:  # else not even the SDK is imported
            from service.tracing.provider import acquire

            tracing = acquire(settings.tracing)
        redis = connect_redis(settings.redis)
        queue = JobQueue(redis, settings.redis.queue_name)
        metrics = WorkerMetrics()
        tracer = None if tracing is None else tracing.tracer("service.worker")
        runner = JobRunner(services, settings, worker_id, metrics, tracer)
        context = cls(settings, services, redis, metrics, runner, tracing=tracing)
        context.warm_up_task = asyncio.create_task(asyncio.to_thread(child.warm_up))
        stats = JobStats(services.sweeps, redis, settings, metrics)
        context.stats_task = asyncio.create_task(stats.run_forever())
        if sweep:
            sweeper = Sweeper(services.sweeps, queue, settings.worker)
            context.sweeper_task = asyncio.create_task(sweeper.run_forever())
        if deliver:
            context.deliverer = Deliverer(
                services.deliveries,
                settings.webhooks,
                SecretBox.from_settings(settings),
                metrics.webhook_deliveries,
                metrics.webhook_lag,
            )
            context.deliverer.start()
        return context

    async def close(self) -> None:
        for task in (self.sweeper_task, self.stats_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.deliverer is not None:
            await self.deliverer.stop(self.settings.worker.shutdown_wait_seconds)
        await self.redis.aclose()
        await self.services.close()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.release)  # exports the spans still pending
