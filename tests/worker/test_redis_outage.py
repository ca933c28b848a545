"""A worker process rides out a Redis outage: it keeps running and takes jobs once Redis is back."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import asyncpg
import httpx2
import msgspec
import pytest

from service.settings import Settings
from tests.factories import make_model, submit, wait_until
from tests.processes import WorkerProcess
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.anyio

ROWS = [{"x": float(i), "y": 2.0 * i} for i in range(20)]


async def _succeeds(database_url: str, job_id: str) -> None:
    async def succeeded() -> bool:
        conn = await asyncpg.connect(database_url)
        try:
            status = await conn.fetchval("SELECT status FROM jobs WHERE id = $1::uuid", job_id)
        finally:
            await conn.close()
        return bool(status == "succeeded")

    await wait_until(succeeded, 60, f"job {job_id} to succeed")


async def test_a_worker_survives_a_redis_outage_and_runs_the_next_job(
    client: httpx2.AsyncClient, settings: Settings, database_url: str
) -> None:
    target = urlsplit(settings.redis.url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    redis = msgspec.structs.replace(
        settings.redis, url=f"redis://127.0.0.1:{proxy.port}{target.path}"
    )
    worker = WorkerProcess(msgspec.structs.replace(settings, redis=redis))
    try:
        await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
        first = await submit(client, "lin", "train", {"data": ROWS})
        await _succeeds(database_url, first["id"])

        await proxy.stop()
        await asyncio.sleep(3)  # several polls fail while Redis is away
        assert worker.process.poll() is None, "the worker exited during the outage"
        await proxy.start()

        second = await submit(client, "lin", "train", {"data": ROWS})
        await _succeeds(database_url, second["id"])
        assert worker.process.poll() is None
    finally:
        worker.stop()
        await proxy.stop()
