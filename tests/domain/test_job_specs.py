"""A job's spec is a tagged Struct from submission to worker: stored with its `kind`, read back
as the same Struct; and specs stored by earlier releases (no `kind`, keys added after the
insert) still decode and still run."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx2
import msgspec
import pytest

from service.domain import batches
from service.domain.job_specs import (
    BatchPredictSpec,
    DatasetSource,
    JobSpec,
    TrainSpec,
    UpdateSpec,
)
from service.jobs.queue import JobQueue
from service.jobs.redis import connect
from service.repositories.database import Database
from service.repositories.jobs import JobRepository
from service.schemas.jobs import JobKind
from service.schemas.training import DatasetQuery, DatasetSelection
from service.settings import Settings
from tests.factories import json_of

pytestmark = pytest.mark.anyio

Worker = Callable[[], Awaitable[None]]
LINEAR = "sklearn.linear_model.LinearRegression"
LINE = [{"x": float(x), "y": 2.0 * x + 1.0} for x in range(10)]


async def make_model(client: httpx2.AsyncClient, name: str, **extra: Any) -> None:
    body = {"name": name, "model_type": LINEAR, "target": "y", **extra}
    response = await client.post("/models", json=body)
    assert response.status_code == 201, response.text


async def model_id(raw: asyncpg.Connection, name: str) -> int:
    found: int = await raw.fetchval("SELECT id FROM models WHERE name = $1", name)
    return found


KINDS: dict[type[JobSpec], JobKind] = {
    TrainSpec: "train",
    UpdateSpec: "update",
    BatchPredictSpec: "batch_predict",
}
QUERY = DatasetQuery(name="points", where=["x > 1"], limit=5)
SELECTION = DatasetSelection(name="points", where=["x > 1"], limit=5)
SPECS: list[JobSpec] = [
    TrainSpec(
        model_type=LINEAR,
        settings={"fit_intercept": True},
        features=["x"],
        target="y",
        parameters={},
        source="inline",
        batch_id=7,
    ),
    UpdateSpec(
        model_type=LINEAR,
        settings={},
        features=["x"],
        target="y",
        parameters={"sample_weight": None},
        source=DatasetSource(query=QUERY),
        dataset_id=3,
        base_version=2,
        incremental=False,
    ),
    BatchPredictSpec(
        version=1,
        output="predict",
        dataset_id=3,
        query=SELECTION,
        select=["x"],
        read=["x"],
        output_dataset="out",
    ),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: type(s).__name__)
async def test_a_spec_round_trips_through_the_job_row_as_its_tagged_struct(
    client: httpx2.AsyncClient, db: Database, raw: asyncpg.Connection, spec: JobSpec
) -> None:
    await make_model(client, "m")
    kind = KINDS[type(spec)]
    job_id = uuid.uuid4()
    async with db.transaction() as conn:
        await JobRepository(conn).insert(job_id, await model_id(raw, "m"), "m", kind, spec, "me")
    stored = msgspec.json.decode(await raw.fetchval("SELECT spec FROM jobs WHERE id = $1", job_id))
    assert stored["kind"] == kind == type(spec).__struct_config__.tag
    async with db.connection() as conn:
        claimed = await JobRepository(conn).claim(job_id, "w")
    assert claimed is not None and claimed.kind == kind
    assert type(claimed.spec) is type(spec) and claimed.spec == spec


async def insert_legacy_job(
    raw: asyncpg.Connection, name: str, kind: str, spec: dict[str, Any]
) -> uuid.UUID:
    """A queued job as the release before typed specs wrote it: a plain object, no `kind`."""
    job_id = uuid.uuid4()
    await raw.execute(
        "INSERT INTO jobs (id, model_id, model_name, kind, status, spec, created_by)"
        " VALUES ($1, $2, $3, $4, 'queued', $5::jsonb, 'legacy')",
        job_id,
        await model_id(raw, name),
        name,
        kind,
        msgspec.json.encode(spec).decode(),
    )
    return job_id


async def insert_legacy_batch(raw: asyncpg.Connection, name: str, job_id: uuid.UUID) -> None:
    """Inline rows as the old submission stored them: batch after job, then `spec || batch_id`."""
    data = batches.encode(batches.from_records(LINE))
    batch_id = await raw.fetchval(
        "INSERT INTO training_batches (model_id, job_id, columns, row_count, data)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
        await model_id(raw, name),
        job_id,
        ["x", "y"],
        len(LINE),
        data,
    )
    await raw.execute(
        "UPDATE jobs SET spec = spec || jsonb_build_object('batch_id', $2::bigint) WHERE id = $1",
        job_id,
        batch_id,
    )


def legacy_fit_spec(source: Any, **extra: Any) -> dict[str, Any]:
    return {
        "model_type": LINEAR,
        "settings": {},
        "features": ["x"],
        "target": "y",
        "parameters": {},
        "incremental": False,
        "base_version": None,
        "source": source,
        **extra,
    }


async def enqueue(settings: Settings, job_id: uuid.UUID) -> None:
    redis = connect(settings.redis)
    try:
        assert await JobQueue(redis, settings.redis.queue_name).enqueue(job_id)
    finally:
        await redis.aclose()


async def job_of(client: httpx2.AsyncClient, job_id: uuid.UUID) -> dict[str, Any]:
    job: dict[str, Any] = json_of(await client.get(f"/jobs/{job_id}"))
    return job


async def test_a_train_job_queued_before_the_upgrade_still_runs(
    client: httpx2.AsyncClient,
    raw: asyncpg.Connection,
    settings: Settings,
    run_worker: Worker,
) -> None:
    await make_model(client, "old")
    job_id = await insert_legacy_job(raw, "old", "train", legacy_fit_spec("inline"))
    await insert_legacy_batch(raw, "old", job_id)
    await enqueue(settings, job_id)
    await run_worker()
    job = await job_of(client, job_id)
    assert job["status"] == "succeeded", job
    version = json_of(await client.get("/models/old/versions/1"))
    assert version["source"] == "inline" and version["rows"] == len(LINE)
    predicted = json_of(await client.post("/models/old/predict", json={"data": [{"x": 20.0}]}))
    assert predicted["predictions"] == [pytest.approx(41.0)]


async def test_dataset_and_batch_jobs_queued_before_the_upgrade_still_run(
    client: httpx2.AsyncClient,
    raw: asyncpg.Connection,
    settings: Settings,
    run_worker: Worker,
) -> None:
    created = await client.post("/datasets", json={"name": "points", "data": LINE})
    assert created.status_code == 201, created.text
    dataset_id = await raw.fetchval("SELECT id FROM dataset_catalogue WHERE name = 'points'")
    query = {"name": "points", "where": ["x >= 2"], "order_by": ["x"]}
    await make_model(client, "old")
    source = {"kind": "dataset", "query": query}
    train = await insert_legacy_job(
        raw, "old", "train", legacy_fit_spec(source, dataset_id=dataset_id)
    )
    await enqueue(settings, train)
    await run_worker()
    assert (await job_of(client, train))["status"] == "succeeded"
    version = json_of(await client.get("/models/old/versions/1"))
    assert version["rows"] == 8
    assert version["source"]["kind"] == "dataset" and version["source"]["rows"] == 8
    assert version["source"]["query"]["where"] == ["x >= 2"]

    legacy_batch = {
        "version": 1,
        "output": "predict",
        "dataset_id": dataset_id,
        "query": {"name": "points"},
        "select": ["x"],
        "read": ["x"],
        "output_dataset": "predicted",
    }
    batch = await insert_legacy_job(raw, "old", "batch_predict", legacy_batch)
    await enqueue(settings, batch)
    await run_worker()
    done = await job_of(client, batch)
    assert done["status"] == "succeeded", done
    assert done["result"] == {"dataset": "predicted", "rows": len(LINE)}
    rows = json_of(await client.get("/datasets/predicted/rows", params={"order_by": "x"}))
    assert [r["prediction"] for r in rows["items"]] == [pytest.approx(r["y"]) for r in LINE]
