"""The worker's transitions of a job row: claim, heartbeat, child pid, progress, fail, release.

Each is one short transaction; the end of a successful job is its own use case (`Fits.record`,
`BatchRuns.run`), since it commits together with what the job made.
"""

from __future__ import annotations

import uuid

from service.domain.actors import Actor
from service.domain.job_specs import ClaimedJob, JobOrigin
from service.repositories.database import Database
from service.repositories.jobs import JobRepository


class JobRuns:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def actor_of(self, job_id: uuid.UUID) -> Actor | None:
        """Read across tenants (the queue names only the job): the actor the worker then
        runs the job as, and None when the job is gone."""
        async with self.db.maintenance() as conn:
            return await JobRepository(conn).actor_of(job_id)

    async def origin_of(self, job_id: uuid.UUID) -> JobOrigin | None:
        """`actor_of`, with the job's trace context, age and attempts; None when it is gone."""
        async with self.db.maintenance() as conn:
            return await JobRepository(conn).origin_of(job_id)

    async def claim(self, job_id: uuid.UUID, worker: str) -> ClaimedJob | None:
        """`queued → running` for this worker; None when the job is no longer queued."""
        async with self.db.transaction() as conn:
            return await JobRepository(conn).claim(job_id, worker)

    async def beat(self, job_id: uuid.UUID) -> bool:
        """Heartbeat; False when the job stopped being `running` (cancelled, deleted)."""
        async with self.db.connection() as conn:
            return await JobRepository(conn).beat(job_id)

    async def status(self, job_id: uuid.UUID) -> str | None:
        async with self.db.connection() as conn:
            job = await JobRepository(conn).get(job_id)
        return None if job is None else job.status

    async def record_child(self, job_id: uuid.UUID, pid: int) -> None:
        async with self.db.connection() as conn:
            await JobRepository(conn).set_child(job_id, pid)

    async def progress(self, job_id: uuid.UUID, fraction: float) -> None:
        """Below 1 until the job succeeded, which sets it to 1 with its result."""
        async with self.db.connection() as conn:
            await JobRepository(conn).set_progress(job_id, min(fraction, 0.99))

    async def fail(self, job_id: uuid.UUID, error_type: str, message: str) -> None:
        async with self.db.transaction() as conn:
            await JobRepository(conn).fail([job_id], error_type, message)

    async def release(self, job_id: uuid.UUID) -> None:
        """`running → queued`, to be run again by the queue's retry of the same dispatch."""
        async with self.db.transaction() as conn:
            await JobRepository(conn).release(job_id)
