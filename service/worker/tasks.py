"""Job functions: thin wrappers that decode arguments and call the use cases."""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from arq import Retry

from service.jobs.queue import RUN_JOB
from service.worker.context import WorkerContext
from service.worker.errors import RetryLater
from service.worker.metrics import WorkerMetrics

JobFunction = Callable[..., Awaitable[Any]]

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


def instrumented(name: str, coro: JobFunction) -> JobFunction:
    """`coro`, counted and timed in the worker's metrics by outcome."""

    @functools.wraps(coro)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        metrics: WorkerMetrics = ctx["app"].metrics
        start = time.perf_counter()
        outcome = "failure"
        try:
            result = await coro(ctx, *args, **kwargs)
            outcome = "success"
            return result
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            metrics.jobs.labels(name, outcome).inc()
            metrics.duration.labels(name).observe(time.perf_counter() - start)

    return run


# name → (coroutine, arq.func options). Retries are decided by the runner, not by arq's count.
FUNCTIONS: dict[str, tuple[JobFunction, dict[str, Any]]] = {
    PING: (ping, {"max_tries": 1}),
    RUN_JOB: (run_job, {"max_tries": 1000, "timeout_margin": 60}),
}
