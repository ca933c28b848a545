"""The producer side of the job queue: a thin interface over arq, so arq can be swapped.

PostgreSQL holds the truth about jobs; Redis only carries "run job X now". A failed enqueue is
therefore not an error for the client: the job stays `queued` and the sweeper enqueues it again.
"""

from __future__ import annotations

import logging
import time
import uuid

from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss, job_key_prefix, result_key_prefix
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

RUN_JOB = "run_job"


def arq_job_id(job_id: uuid.UUID, dispatch: int) -> str:
    """Each re-dispatch gets its own arq id: arq refuses an id whose result or lock still lives."""
    return str(job_id) if dispatch == 0 else f"{job_id}:{dispatch}"


class JobQueue:
    def __init__(self, redis: ArqRedis, queue_name: str) -> None:
        self.redis = redis
        self.queue_name = queue_name

    async def enqueue(self, job_id: uuid.UUID, dispatch: int = 0) -> bool:
        """True when the job is (now or already) on its way to a worker."""
        try:
            await self.redis.enqueue_job(
                RUN_JOB,
                str(job_id),
                _job_id=arq_job_id(job_id, dispatch),
                _queue_name=self.queue_name,
            )
        except (RedisError, OSError) as exc:
            log.warning(
                "enqueue failed; the sweeper will retry",
                extra={"job": str(job_id), "error": str(exc)},
            )
            return False
        return True

    async def is_known(self, job_id: uuid.UUID, dispatch: int) -> bool:
        """Whether Redis still has this dispatch (queued, running or finished)."""
        arq_id = arq_job_id(job_id, dispatch)
        found = await self.redis.exists(job_key_prefix + arq_id, result_key_prefix + arq_id)
        return bool(found)

    async def abort(self, job_id: uuid.UUID, dispatch: int) -> None:
        """Asks the worker running this job to stop it now; best effort (see module doc)."""
        try:
            await self.redis.zadd(
                abort_jobs_ss, {arq_job_id(job_id, dispatch): int(time.time() * 1000)}
            )
        except (RedisError, OSError) as exc:
            log.warning(
                "abort signal failed; the worker stops at its next heartbeat",
                extra={"job": str(job_id), "error": str(exc)},
            )
