"""What every job of a worker process shares: settings, the database, Redis and metrics."""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis

from service.jobs.redis import connect as connect_redis
from service.repositories.database import Database
from service.settings import Settings
from service.worker.metrics import WorkerMetrics


@dataclass
class WorkerContext:
    settings: Settings
    db: Database
    redis: ArqRedis
    metrics: WorkerMetrics

    @classmethod
    async def start(cls, settings: Settings) -> WorkerContext:
        db = Database(settings.database)
        await db.start()
        return cls(settings, db, connect_redis(settings.redis), WorkerMetrics())

    async def close(self) -> None:
        await self.redis.aclose()
        await self.db.close()
