"""Cancel, crash and Redis-loss recovery, with real worker processes and real child processes."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import pytest
import redis as sync_redis

from service.settings import Settings
from tests.conftest import ROOT, json_of
from tests.http.test_training import make_model, submit
from tests.iris import iris_records

pytestmark = pytest.mark.anyio

SLOW_FOREST = {"n_estimators": 400, "max_depth": 12, "n_jobs": 1}


def slow_data(rows: int = 3000) -> list[dict[str, Any]]:
    """Enough rows that a 400-tree forest takes seconds on this machine."""
    base = iris_records()
    return [
        {**base[i % 150], "sepal_length": base[i % 150]["sepal_length"] + (i % 97) / 100}
        for i in range(rows)
    ]


async def wait_for(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


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


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0; it is gone as far as work is concerned.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


class WorkerProcess:
    """`python -m service worker` configured by environment variables, as in production."""

    def __init__(self, settings: Settings, **worker: object) -> None:
        self.worker_id = f"test-{os.getpid()}-{time.monotonic_ns()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE__")}
        env.update(
            {
                "SERVICE__DATABASE__URL": settings.database.url,
                "SERVICE__REDIS__URL": settings.redis.url,
                "SERVICE__REDIS__QUEUE_NAME": settings.redis.queue_name,
                "SERVICE__ARTIFACTS__HMAC_KEY": settings.artifacts.hmac_key,
                "SERVICE__AUTH__MODE": "disabled",
                "SERVICE__WORKER__METRICS_PORT": "0",
                "SERVICE__WORKER__HEARTBEAT_SECONDS": "1",
                "SERVICE__LOGGING__FORMAT": "text",
                "SERVICE_WORKER_ID": self.worker_id,
            }
        )
        env.update({f"SERVICE__WORKER__{k.upper()}": str(v) for k, v in worker.items()})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service", "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=None if os.environ.get("TEST_WORKER_LOGS") else subprocess.DEVNULL,
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


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
        settings=SLOW_FOREST,
    )
    job = await submit(client, "slow", "train", {"data": slow_data(20_000)})
    worker = asyncio.ensure_future(run_worker())

    async def child_started() -> bool:
        row = await job_row(database_url, job["id"])
        return row["status"] == "running" and row["child_pid"] is not None

    await wait_for(child_started, 60, "the fit to start")
    pid = (await job_row(database_url, job["id"]))["child_pid"]
    assert alive(pid)
    started = time.monotonic()
    response = await client.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 202 and json_of(response)["status"] == "cancelled"

    async def child_gone() -> bool:
        return not alive(pid)

    await wait_for(child_gone, 2.0, "the child process to be killed")
    assert time.monotonic() - started < 2.0
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

    await wait_for(running, 60, "the first worker to start the job")
    child = (await job_row(database_url, job["id"]))["child_pid"]
    first.kill()

    async def child_gone() -> bool:
        return not alive(child)

    await wait_for(child_gone, 10, "the orphaned fit to die with its worker")
    workers.append(WorkerProcess(settings, stale_after_seconds=2, sweep_seconds=1))

    async def succeeded() -> bool:
        return bool((await job_row(database_url, job["id"]))["status"] == "succeeded")

    await wait_for(succeeded, 90, "the job to be recovered and finished")
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

    await wait_for(running, 60, "the job to start")
    first.kill()
    workers.append(WorkerProcess(settings, max_tries=1, stale_after_seconds=2, sweep_seconds=1))

    async def failed() -> bool:
        return bool((await job_row(database_url, job["id"]))["status"] == "failed")

    await wait_for(failed, 60, "the abandoned job to fail")
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

    await wait_for(succeeded, 60, "the lost job to be enqueued again and run")


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
