"""What the sweeper cleans up: rows of jobs that produced no version, and old idempotency keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import httpx2
import pytest

from service.domain.sweeps import Sweeps
from service.jobs.queue import JobQueue
from service.jobs.redis import connect
from service.repositories.database import Database
from service.settings import Settings
from service.worker.sweeper import Sweeper
from tests.factories import json_of, make_model, submit

pytestmark = pytest.mark.anyio


async def count_batches(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM training_batches"))
    finally:
        await conn.close()


async def test_rows_of_failed_jobs_go_and_rows_of_versions_stay(
    client: httpx2.AsyncClient,
    settings: Settings,
    database_url: str,
    run_worker: Callable[[], Awaitable[None]],
) -> None:
    await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
    await submit(client, "lin", "train", {"data": [{"x": 1.0, "y": 1.0}, {"x": 2.0, "y": 2.0}]})
    await run_worker()
    await make_model(client, "one", "sklearn.linear_model.LogisticRegression", target="y")
    failing = await submit(client, "one", "train", {"data": [{"x": 1.0, "y": "a"}] * 3})
    await run_worker()
    assert json_of(await client.get(f"/jobs/{failing['id']}"))["status"] == "failed"
    assert await count_batches(database_url) == 2
    db = Database(settings.database)
    await db.start()
    redis = connect(settings.redis)
    try:
        queue = JobQueue(redis, settings.redis.queue_name)
        sweeper = Sweeper(Sweeps(db), queue, settings.worker, 0)
        await sweeper.sweep()
    finally:
        await redis.aclose()
        await db.close()
    assert await count_batches(database_url) == 1  # the version's rows remain
    again = await client.post("/models/lin/update", json={"data": [{"x": 3.0, "y": 3.0}]})
    assert again.status_code == 202


async def test_idempotency_keys_go_with_their_model(client: httpx2.AsyncClient) -> None:
    await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
    body = {"data": [{"x": 1.0, "y": 1.0}]}
    first = await submit(client, "lin", "train", body, **{"Idempotency-Key": "k"})
    assert (await client.delete("/models/lin")).status_code == 204
    await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
    second = await client.post("/models/lin/train", json=body, headers={"Idempotency-Key": "k"})
    assert second.status_code == 202
    assert json_of(second)["id"] != first["id"]
    assert "idempotent-replayed" not in second.headers


async def test_old_events_go_unless_a_delivery_of_theirs_is_still_pending(
    client: httpx2.AsyncClient, settings: Settings, raw: asyncpg.Connection
) -> None:
    for name in ("old", "owed", "new"):
        assert (await client.post("/datasets", json={"name": name, "data": [{"x": 1}]})).is_success
    await raw.execute(
        "UPDATE events SET at = now() - interval '8 days' WHERE subject IN ($1, $2)",
        "datasets/old",
        "datasets/owed",
    )
    hook = await raw.fetchval(
        "INSERT INTO webhooks (tenant, url, events, secret, secret_key_id)"
        " VALUES ('default', 'http://127.0.0.1:9/', '{dataset.created}', '', 'k') RETURNING id"
    )
    for subject, status in (("datasets/old", "delivered"), ("datasets/owed", "pending")):
        await raw.execute(
            "INSERT INTO webhook_deliveries (tenant, webhook_id, event, status)"
            " SELECT 'default', $1, id, $2 FROM events WHERE subject = $3",
            hook,
            status,
            subject,
        )
    db = Database(settings.database)
    await db.start()
    try:
        await Sweeps(db).purge(60, 3600, 7 * 24 * 3600)
    finally:
        await db.close()
    kept = await raw.fetch("SELECT subject FROM events ORDER BY id")
    assert [r["subject"] for r in kept] == ["datasets/owed", "datasets/new"]
    assert await raw.fetchval("SELECT count(*) FROM webhook_deliveries") == 1
