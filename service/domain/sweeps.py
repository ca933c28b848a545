"""The database side of the sweeper: abandoned jobs, jobs waiting too long, unused rows.

The worker's sweeper (`service/worker/sweeper.py`) decides when to sweep and talks to the queue;
these use cases say which jobs need it and change their rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.repositories.database import Database
from service.repositories.deliveries import purge_events
from service.repositories.idempotency import IdempotencyRepository
from service.repositories.jobs import Backlog, Dispatch, JobRepository
from service.repositories.versions import BatchRepository

WORKER_LOST = ("WorkerLost", "the worker running this job stopped responding")


@dataclass(frozen=True)
class Abandoned:
    requeued: list[Dispatch]  # back to `queued` under their next dispatch number
    failed: list[Dispatch]  # out of tries


class Sweeps:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def recover_abandoned(self, stale_after_seconds: float, max_tries: int) -> Abandoned:
        """Running jobs whose heartbeat stopped: queued again while they have tries left,
        else failed. Rows another sweeper holds are skipped."""
        async with self.db.maintenance() as conn:
            jobs = JobRepository(conn)
            abandoned = await jobs.lock_abandoned(stale_after_seconds)
            failed = [j for j in abandoned if j.attempts >= max_tries]
            requeue = [j for j in abandoned if j.attempts < max_tries]
            if failed:
                await jobs.fail([j.id for j in failed], *WORKER_LOST)
            if requeue:
                await jobs.redispatch([j.id for j in requeue])
        return Abandoned(requeue, failed)

    async def queued_before(self, seconds: float) -> list[Dispatch]:
        async with self.db.maintenance() as conn:
            return await JobRepository(conn).queued_before(seconds)

    async def backlog(
        self, stale_after_seconds: float, overdue_after_seconds: float
    ) -> list[Backlog]:
        """Queued and running jobs by kind, with the age of the oldest queued one and how many
        running ones look stuck, across tenants."""
        async with self.db.maintenance() as conn:
            return await JobRepository(conn).backlog(stale_after_seconds, overdue_after_seconds)

    async def purge(
        self,
        batch_grace_seconds: float,
        idempotency_ttl_seconds: float,
        events_ttl_seconds: float,
    ) -> None:
        """Rows of failed or cancelled jobs, idempotency keys past their time, and events past
        theirs whose deliveries are all finished."""
        async with self.db.maintenance() as conn:
            await BatchRepository(conn).purge_unused(batch_grace_seconds)
            await IdempotencyRepository(conn).purge_older_than(idempotency_ttl_seconds)
            await purge_events(conn, events_ttl_seconds)
