"""Cancel, crash and Redis-loss recovery, with real worker processes and real child processes."""

from __future__ import annotations

import asyncio
import os
import pickle
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import msgspec
import pytest
import redis as sync_redis

from service.settings import Settings
from tests.factories import json_of, make_model, submit, wait_until
from tests.iris import iris_records
from tests.processes import WorkerProcess, alive

pytestmark = pytest.mark.anyio

SLOW_FOREST = {"n_estimators": 400, "max_depth": 12, "n_jobs": 1}
# Far more trees than a fit could grow within any of the tests' deadlines: a fit that ends
# before its deadline was stopped, it did not finish. Beyond models.limits, raised here.
ENDLESS_FOREST = {**SLOW_FOREST, "n_estimators": 100_000}


def slow_data(rows: int = 3000) -> list[dict[str, Any]]:
    """Enough rows that a 400-tree forest takes seconds on this machine."""
    base = iris_records()
    return [
        {**base[i % 150], "sepal_length": base[i % 150]["sepal_length"] + (i % 97) / 100}
        for i in range(rows)
    ]


async def job_row(database_url: str, job_id: str) -> asyncpg.Record:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT status, child_pid, attempts FROM jobs WHERE id = $1::uuid", job_id
        )
        assert row is not None
        return row
    finally:
        await conn.close()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    limits = msgspec.structs.replace(settings.models.limits, n_estimators=100_000)
    return msgspec.structs.replace(
        settings, models=msgspec.structs.replace(settings.models, limits=limits)
    )


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


async def test_cancel_running_job_kills_the_child(
    client: httpx2.AsyncClient,
    settings: Settings,
    database_url: str,
    run_worker: Callable[[], Awaitable[None]],
) -> None:
    await make_model(
        client,
        "slow",
        "sklearn.ensemble.RandomForestClassifier",
        target="species",
        settings=ENDLESS_FOREST,
    )
    job = await submit(client, "slow", "train", {"data": slow_data(20_000)})
    worker = asyncio.ensure_future(run_worker())

    async def child_started() -> bool:
        row = await job_row(database_url, job["id"])
        return row["status"] == "running" and row["child_pid"] is not None

    await wait_until(child_started, 60, "the fit to start")
    pid = (await job_row(database_url, job["id"]))["child_pid"]
    assert alive(pid)
    response = await client.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 202 and json_of(response)["status"] == "cancelled"

    async def child_gone() -> bool:
        return not alive(pid)

    await wait_until(child_gone, 60, "the child process to be killed")
    await asyncio.wait_for(worker, 30)
    assert json_of(await client.get(f"/jobs/{job['id']}"))["status"] == "cancelled"
    model = json_of(await client.get("/models/slow"))
    assert model["current_version"] is None


async def test_killed_worker_job_is_requeued_and_finishes(
    client: httpx2.AsyncClient,
    settings: Settings,
    database_url: str,
    workers: list[WorkerProcess],
) -> None:
    await make_model(
        client,
        "slow",
        "sklearn.ensemble.RandomForestClassifier",
        target="species",
        settings={**SLOW_FOREST, "n_estimators": 150},
    )
    job = await submit(client, "slow", "train", {"data": slow_data(6000)})
    first = WorkerProcess(settings)
    workers.append(first)

    async def running() -> bool:
        row = await job_row(database_url, job["id"])
        return row["status"] == "running" and row["child_pid"] is not None

    await wait_until(running, 60, "the first worker to start the job")
    child = (await job_row(database_url, job["id"]))["child_pid"]
    first.kill()

    async def child_gone() -> bool:
        return not alive(child)

    await wait_until(child_gone, 10, "the orphaned fit to die with its worker")
    workers.append(WorkerProcess(settings, stale_after_seconds=2, sweep_seconds=1))

    async def succeeded() -> bool:
        return bool((await job_row(database_url, job["id"]))["status"] == "succeeded")

    await wait_until(succeeded, 90, "the job to be recovered and finished")
    done = json_of(await client.get(f"/jobs/{job['id']}"))
    assert done["attempts"] == 2 and done["result"] == {"version": 1}


async def test_killed_worker_without_tries_left_fails_the_job(
    client: httpx2.AsyncClient,
    settings: Settings,
    database_url: str,
    workers: list[WorkerProcess],
) -> None:
    await make_model(
        client,
        "slow",
        "sklearn.ensemble.RandomForestClassifier",
        target="species",
        settings=SLOW_FOREST,
    )
    job = await submit(client, "slow", "train", {"data": slow_data(20_000)})
    first = WorkerProcess(settings, max_tries=1)
    workers.append(first)

    async def running() -> bool:
        return bool((await job_row(database_url, job["id"]))["status"] == "running")

    await wait_until(running, 60, "the job to start")
    first.kill()
    workers.append(WorkerProcess(settings, max_tries=1, stale_after_seconds=2, sweep_seconds=1))

    async def failed() -> bool:
        return bool((await job_row(database_url, job["id"]))["status"] == "failed")

    await wait_until(failed, 60, "the abandoned job to fail")
    assert json_of(await client.get(f"/jobs/{job['id']}"))["error"]["type"] == "WorkerLost"


async def test_jobs_lost_by_redis_are_enqueued_again(
    client: httpx2.AsyncClient,
    settings: Settings,
    workers: list[WorkerProcess],
    database_url: str,
) -> None:
    await make_model(client, "iris", "sklearn.linear_model.LogisticRegression", target="species")
    job = await submit(client, "iris", "train", {"data": iris_records()})
    # Simulate a flushed Redis for this test's keys only (other test runs may share the server).
    r = sync_redis.Redis.from_url(settings.redis.url)
    try:
        assert r.delete(settings.redis.queue_name, f"arq:job:{job['id']}") == 2
    finally:
        r.close()
    workers.append(WorkerProcess(settings, sweep_seconds=1, requeue_after_seconds=1))

    async def succeeded() -> bool:
        return bool((await job_row(database_url, job["id"]))["status"] == "succeeded")

    await wait_until(succeeded, 60, "the lost job to be enqueued again and run")


class _Exploit:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp") / f"models-service-pwned-{os.getpid()}"


async def test_tampered_artifact_is_never_unpickled(
    client: httpx2.AsyncClient,
    run_worker: Callable[[], Awaitable[None]],
    database_url: str,
) -> None:
    await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
    await submit(
        client, "lin", "train", {"data": [{"x": float(i), "y": float(i)} for i in range(5)]}
    )
    await run_worker()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE artifacts SET data = $1", pickle.dumps(_Exploit()))
    finally:
        await conn.close()
    MARKER.unlink(missing_ok=True)
    response = await client.post("/models/lin/predict", json={"data": [{"x": 1.0}]})
    assert response.status_code == 500
    assert "verification" in json_of(response)["detail"]
    assert not MARKER.exists()
    metrics = (await client.get("/metrics")).text
    assert "artifact_verification_failures_total 1.0" in metrics
