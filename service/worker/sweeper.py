"""Keeps PostgreSQL's jobs and Redis's queue in step.

- A `running` job whose heartbeat is older than `stale_after_seconds` lost its worker (killed,
  OOM, node gone): it is queued again while it has tries left, else failed.
- A `queued` job that Redis no longer knows (flushed, restarted) is enqueued again.
Several workers may sweep at once: rows are claimed with SKIP LOCKED and enqueues are
idempotent per dispatch.
"""

from __future__ import annotations

import asyncio
import logging

from service.domain.errors import Unavailable
from service.domain.sweeps import Sweeps
from service.jobs.queue import JobQueue
from service.settings import WorkerSettings

log = logging.getLogger(__name__)

# Training rows that nothing uses are kept this long (a submission may still be in flight).
BATCH_GRACE_SECONDS = 60.0
# How long an Idempotency-Key replays its first response.
IDEMPOTENCY_TTL_SECONDS = 24 * 3600.0
# How long events stay in the outbox (the window of a stream's `Last-Event-ID` resume); one
# whose delivery is still being retried stays until that ends.
EVENTS_TTL_SECONDS = 7 * 24 * 3600.0


class Sweeper:
    def __init__(
        self,
        sweeps: Sweeps,
        queue: JobQueue,
        settings: WorkerSettings,
        batch_grace_seconds: float = BATCH_GRACE_SECONDS,
    ) -> None:
        self.sweeps = sweeps
        self.queue = queue
        self.settings = settings
        self.batch_grace_seconds = batch_grace_seconds

    async def run_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Unavailable:
                pass
            except Exception:  # a sweep must never kill the worker; it runs again soon
                log.exception("sweep failed")
            await asyncio.sleep(self.settings.sweep_seconds)

    async def sweep(self) -> None:
        await self._recover_abandoned()
        await self._redispatch_lost()
        await self._purge()

    async def _purge(self) -> None:
        await self.sweeps.purge(
            self.batch_grace_seconds, IDEMPOTENCY_TTL_SECONDS, EVENTS_TTL_SECONDS
        )

    async def _recover_abandoned(self) -> None:
        abandoned = await self.sweeps.recover_abandoned(
            self.settings.stale_after_seconds, self.settings.max_tries
        )
        for job in abandoned.requeued:
            log.warning("re-queued an abandoned job", extra={"job": str(job.id)})
            await self.queue.enqueue(job.id, job.dispatches + 1)
        for job in abandoned.failed:
            log.warning("failed an abandoned job: no tries left", extra={"job": str(job.id)})

    async def _redispatch_lost(self) -> None:
        queued = await self.sweeps.queued_before(self.settings.requeue_after_seconds)
        for job in queued:
            if not await self.queue.is_known(job.id, job.dispatches):
                log.warning("re-enqueued a job Redis had lost", extra={"job": str(job.id)})
                await self.queue.enqueue(job.id, job.dispatches)
