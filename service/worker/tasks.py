"""Job functions: thin wrappers that decode arguments and call the use cases."""

from __future__ import annotations

import uuid
from typing import Any

from arq import Retry

from service.jobs.queue import RUN_JOB
from service.worker.app import JobFunction
from service.worker.context import WorkerContext
from service.worker.errors import RetryLater

PING = "ping"


async def ping(ctx: dict[str, Any]) -> str:
    """A queue round trip with no side effects, for smoke tests of a deployment."""
    return "pong"


async def run_job(ctx: dict[str, Any], job_id: str) -> str:
    app: WorkerContext = ctx["app"]
    try:
        return await app.runner.run(uuid.UUID(job_id))
    except RetryLater as exc:
        raise Retry(defer=min(60, 2**exc.attempt)) from exc


# name → (coroutine, arq.func options). Retries are decided by the runner, not by arq's count.
FUNCTIONS: dict[str, tuple[JobFunction, dict[str, Any]]] = {
    PING: (ping, {"max_tries": 1}),
    RUN_JOB: (run_job, {"max_tries": 1000, "timeout_margin": 60}),
}
