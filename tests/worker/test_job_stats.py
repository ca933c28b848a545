"""The job backlog on the worker's metrics: queued and running jobs by kind, the age of the
oldest queued one, running jobs that look stuck (no heartbeat, or past what their attempts may
take), and the Redis queue's depth; a PostgreSQL or Redis that does not answer marks its source
down, leaves the figures as they were, and neither stops the heartbeat nor breaks the metrics
page."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import httpx2
import msgspec
import pytest
from prometheus_client import generate_latest

from service.domain.sweeps import Sweeps
from service.jobs.redis import connect
from service.repositories.database import Database
from service.settings import Settings
from service.worker.job_stats import JobStats
from service.worker.metrics import WorkerMetrics
from tests.factories import LOGREG, make_model, submit, wait_until
from tests.iris import iris_records

pytestmark = pytest.mark.anyio

CLOSED_POSTGRES = "postgresql://postgres@127.0.0.1:1/models"
CLOSED_REDIS = "redis://127.0.0.1:1/0"
BEAT = "worker_heartbeat_timestamp_seconds"


def value(metrics: WorkerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def refreshed(settings: Settings, metrics: WorkerMetrics) -> None:
    db = Database(settings.database)
    await db.start()
    redis = connect(settings.redis)
    try:
        await JobStats(Sweeps(db), redis, settings, metrics).refresh()
    finally:
        await redis.aclose()
        await db.close()


async def test_the_backlog_shows_waiting_running_and_stuck_jobs_by_kind(
    client: httpx2.AsyncClient, settings: Settings, database_url: str
) -> None:
    for name in ("waiting", "hung", "endless", "second_try"):
        await make_model(client, name, LOGREG, target="species")
        await submit(client, name, "train", {"data": iris_records()})
    raw = await asyncpg.connect(database_url)
    try:
        # No worker runs here: the rows are put in the states a worker and time would leave.
        await raw.execute(
            "UPDATE jobs SET created_at = now() - interval '10 minutes'"
            " WHERE model_name = 'waiting'"
        )
        await raw.execute(
            "UPDATE jobs SET status = 'running', started_at = now(),"
            " heartbeat_at = now() - interval '1 hour' WHERE model_name = 'hung'"
        )
        await raw.execute(
            "UPDATE jobs SET status = 'running', started_at = now() - interval '2 hours',"
            " heartbeat_at = now() WHERE model_name = 'endless'"
        )
        # Its second attempt: two job timeouts' worth since the first one started is fine.
        await raw.execute(
            "UPDATE jobs SET status = 'running', started_at = now() - interval '2 hours',"
            " heartbeat_at = now(), attempts = 2 WHERE model_name = 'second_try'"
        )
    finally:
        await raw.close()
    metrics = WorkerMetrics()
    await refreshed(settings, metrics)
    assert value(metrics, "jobs_queued", kind="train") == 1
    assert value(metrics, "jobs_running", kind="train") == 3
    assert value(metrics, "jobs_queued", kind="batch_predict") == 0  # every kind has a series
    oldest = value(metrics, "jobs_oldest_queued_age_seconds", kind="train")
    assert oldest is not None and 600 <= oldest < 3600
    assert value(metrics, "jobs_stuck", kind="train", reason="heartbeat_stale") == 1
    assert value(metrics, "jobs_stuck", kind="train", reason="over_timeout") == 1  # endless
    assert value(metrics, "arq_queue_depth", state="due") == 4  # all four were enqueued
    assert value(metrics, "arq_queue_depth", state="deferred") == 0
    assert value(metrics, "worker_job_stats_up", source="postgres") == 1
    assert value(metrics, "worker_job_stats_up", source="redis") == 1


async def test_an_empty_backlog_is_zero_and_the_last_figures_stay_while_sources_are_down(
    client: httpx2.AsyncClient, settings: Settings
) -> None:
    await make_model(client, "waiting", LOGREG, target="species")
    await submit(client, "waiting", "train", {"data": iris_records()})
    metrics = WorkerMetrics()
    await refreshed(settings, metrics)
    down = msgspec.structs.replace(
        settings,
        database=msgspec.structs.replace(settings.database, url=CLOSED_POSTGRES),
        redis=msgspec.structs.replace(settings.redis, url=CLOSED_REDIS),
    )
    await refreshed(down, metrics)
    assert value(metrics, "worker_job_stats_up", source="postgres") == 0
    assert value(metrics, "worker_job_stats_up", source="redis") == 0
    assert value(metrics, "jobs_queued", kind="train") == 1
    assert value(metrics, "arq_queue_depth", state="due") == 1
    assert value(metrics, "jobs_queued", kind="update") == 0


async def test_the_heartbeat_moves_while_both_sources_are_down(settings: Settings) -> None:
    down = msgspec.structs.replace(
        settings,
        database=msgspec.structs.replace(settings.database, url=CLOSED_POSTGRES),
        redis=msgspec.structs.replace(settings.redis, url=CLOSED_REDIS),
        worker=msgspec.structs.replace(settings.worker, heartbeat_seconds=0.05),
    )
    metrics = WorkerMetrics()
    db = Database(down.database)
    await db.start()
    redis = connect(down.redis)
    task = asyncio.create_task(JobStats(Sweeps(db), redis, down, metrics).run_forever())
    try:
        await wait_until(lambda: bool(value(metrics, BEAT)), 30, "a beat")
        first = value(metrics, BEAT)
        await wait_until(lambda: value(metrics, BEAT) != first, 30, "another beat")
        assert value(metrics, "worker_job_stats_up", source="postgres") == 0
        page = generate_latest(metrics.registry).decode()
        assert "worker_heartbeat_timestamp_seconds" in page and "jobs_queued" in page
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()
        await db.close()
