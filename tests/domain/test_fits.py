"""Recording a fit is one transaction that only a still-running job can commit: a cancel that
lands first wins, and the model keeps serving its current version."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import pytest

from service.artifacts.store import ArtifactStore
from service.domain.fits import FitInputs, Fits
from service.domain.job_errors import JobLost
from service.domain.job_runs import JobRuns
from service.domain.job_specs import ClaimedJob, FittedVersion, TrainSpec
from service.repositories.database import Database
from tests.factories import artifact_keys, json_of

pytestmark = pytest.mark.anyio

Worker = Callable[[], Awaitable[None]]
ROWS = {"data": [{"x": float(x), "y": 3.0 * x} for x in range(5)]}
FITTED = FittedVersion(
    artifact=b"bytes the record step stores but never unpickles",
    features=["x"],
    feature_kinds={"x": "numeric"},
    target="y",
    outputs=["predict"],
    metrics={"r2": 1.0},
    rows=5,
    library_versions={"scikit-learn": "test"},
)
INPUTS = FitInputs(batches=[], batch_ids=[], source="inline")


async def trained(client: httpx2.AsyncClient, run_worker: Worker) -> None:
    body = {"name": "lin", "model_type": "sklearn.linear_model.LinearRegression", "target": "y"}
    assert (await client.post("/models", json=body)).status_code == 201
    assert (await client.post("/models/lin/train", json=ROWS)).status_code == 202
    await run_worker()


async def claimed_train_job(client: httpx2.AsyncClient, runs: JobRuns) -> ClaimedJob:
    response = await client.post("/models/lin/train", json=ROWS)
    assert response.status_code == 202, response.text
    job = await runs.claim(uuid.UUID(json_of(response)["id"]), "test-worker")
    assert job is not None and isinstance(job.spec, TrainSpec)
    return job


async def model(client: httpx2.AsyncClient) -> dict[str, Any]:
    found: dict[str, Any] = json_of(await client.get("/models/lin"))
    return found


async def test_a_fit_of_a_cancelled_job_is_refused_and_the_current_version_stays(
    client: httpx2.AsyncClient, db: Database, run_worker: Worker
) -> None:
    await trained(client, run_worker)
    runs = JobRuns(db)
    fits = Fits(db, ArtifactStore(db, artifact_keys()), max_train_rows=1000)
    job = await claimed_train_job(client, runs)
    assert isinstance(job.spec, TrainSpec)
    assert (await client.post(f"/jobs/{job.id}/cancel")).status_code == 202

    with pytest.raises(JobLost):
        await fits.record(job, job.spec, FITTED, INPUTS)

    assert (await model(client))["current_version"] == 1
    versions = json_of(await client.get("/models/lin/versions"))
    assert [v["version"] for v in versions["items"]] == [1]
    assert json_of(await client.get(f"/jobs/{job.id}"))["status"] == "cancelled"


async def test_a_fit_of_a_running_job_becomes_the_current_version_and_finishes_the_job(
    client: httpx2.AsyncClient, db: Database, run_worker: Worker
) -> None:
    await trained(client, run_worker)
    fits = Fits(db, ArtifactStore(db, artifact_keys()), max_train_rows=1000)
    job = await claimed_train_job(client, JobRuns(db))
    assert isinstance(job.spec, TrainSpec)

    assert await fits.record(job, job.spec, FITTED, INPUTS) == 2

    assert (await model(client))["current_version"] == 2
    finished = json_of(await client.get(f"/jobs/{job.id}"))
    assert finished["status"] == "succeeded" and finished["result"] == {"version": 2}
    version = json_of(await client.get("/models/lin/versions/2"))
    assert version["job_id"] == str(job.id) and version["source"] == "inline"
