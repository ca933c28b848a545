"""The arq worker: settings, lifecycle, per-worker heartbeat and metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, cast

from arq.worker import Function, Worker, func
from prometheus_client import start_http_server
from redis.exceptions import RedisError

from service.jobs.serialization import deserialize, serialize
from service.settings import Settings
from service.worker import child
from service.worker.context import WorkerContext
from service.worker.health import health_key, redis_settings, worker_id

log = logging.getLogger(__name__)


# Seconds a worker waits before polling a Redis that did not answer.
REDIS_RETRY_SECONDS = 1.0


class _Worker(Worker):
    """arq's worker, except that Redis failing a poll pauses the polling instead of ending the
    process (arq lets the error out of its main loop, so every worker exited on a Redis blip).
    Running jobs carry on meanwhile; their state is in PostgreSQL."""

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            log.warning("redis unavailable; polling again shortly", extra={"error": str(exc)})
            await asyncio.sleep(REDIS_RETRY_SECONDS)


def build_worker(
    settings: Settings,
    *,
    burst: bool = False,
    handle_signals: bool = True,
    serve_metrics: bool = True,
    poll_delay: float | None = None,
    extra_functions: Sequence[Function] = (),
) -> Worker:
    from service.worker.tasks import FUNCTIONS, instrumented

    functions = []
    for name, (coro, options) in FUNCTIONS.items():
        options = dict(options)
        # Our own deadline (worker.job_timeout) fires first and fails the job cleanly; arq's
        # is a backstop that would otherwise leave the job re-queued forever.
        if (margin := options.pop("timeout_margin", None)) is not None:
            options["timeout"] = settings.worker.job_timeout + margin
        functions.append(func(cast(Any, instrumented(name, coro)), name=name, **options))

    async def on_startup(ctx: dict[str, Any]) -> None:
        app = await WorkerContext.start(settings, worker_id())
        ctx["app"] = app
        if serve_metrics and settings.worker.metrics_port:
            start_http_server(
                settings.worker.metrics_port,
                addr=settings.worker.metrics_address,
                registry=app.metrics.registry,
            )
        log.info("worker started", extra={"worker_id": worker_id()})

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        app: WorkerContext | None = ctx.get("app")
        if app is not None:
            await app.close()

    return _Worker(
        functions=[*functions, *extra_functions],
        queue_name=settings.redis.queue_name,
        redis_settings=redis_settings(settings),
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        burst=burst,
        handle_signals=handle_signals,
        poll_delay=settings.worker.poll_seconds if poll_delay is None else poll_delay,
        max_jobs=settings.worker.max_jobs,
        job_timeout=settings.worker.job_timeout,
        max_tries=settings.worker.max_tries,
        allow_abort_jobs=True,
        job_completion_wait=int(settings.worker.shutdown_wait_seconds),
        health_check_interval=max(1, int(settings.worker.heartbeat_seconds)),
        health_check_key=health_key(settings),
        job_serializer=serialize,
        job_deserializer=deserialize,
        keep_result=3600,
    )


def run_worker(settings: Settings) -> None:
    """Run the worker process until SIGTERM or SIGINT; nothing it started outlives it."""
    worker = build_worker(settings)
    try:
        worker.run()
    finally:
        child.stop_forkserver()
    log.info("worker stopped", extra={"worker_id": worker_id()})
