"""What every job of a worker process shares: settings, the database, Redis and metrics."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from arq.connections import ArqRedis

from service.jobs.queue import JobQueue
from service.jobs.redis import connect as connect_redis
from service.repositories.database import Database
from service.settings import Settings
from service.worker import child
from service.worker.dataset_loader import dataset_loader
from service.worker.execution import JobRunner
from service.worker.metrics import WorkerMetrics
from service.worker.sweeper import Sweeper


@dataclass
class WorkerContext:
    settings: Settings
    db: Database
    redis: ArqRedis
    metrics: WorkerMetrics
    runner: JobRunner
    sweeper_task: asyncio.Task[None] | None = None
    warm_up_task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, settings: Settings, worker_id: str, sweep: bool = True) -> WorkerContext:
        db = Database(settings.database)
        await db.start()
        redis = connect_redis(settings.redis)
        queue = JobQueue(redis, settings.redis.queue_name)
        runner = JobRunner(db, settings, worker_id)
        runner.dataset_loader = dataset_loader(settings)
        context = cls(settings, db, redis, WorkerMetrics(), runner)
        context.warm_up_task = asyncio.create_task(asyncio.to_thread(child.warm_up))
        if sweep:
            sweeper = Sweeper(db, queue, settings.worker)
            context.sweeper_task = asyncio.create_task(sweeper.run_forever())
        return context

    async def close(self) -> None:
        if self.sweeper_task is not None:
            self.sweeper_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sweeper_task
        await self.redis.aclose()
        await self.db.close()
