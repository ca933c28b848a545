"""Rotating the artifact key through the api and the worker: versions signed by the old key still
load while it stays configured, new versions are signed by the new key, and once the old key is
dropped its versions are refused with the tampered-artifact problem, never unpickled."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx2
import msgspec
import pytest

from service.artifacts import signing
from service.artifacts.store import ArtifactStore
from service.repositories.database import Database
from service.settings import Settings
from tests.factories import (
    HMAC_KEY,
    ClientFactory,
    Worker,
    artifact_keys,
    burst_worker,
    job_of,
    json_of,
    make_dataset,
    make_model,
    make_settings,
    run_job,
    submit,
)

pytestmark = pytest.mark.anyio

KEY_B = "the-next-artifact-key-fedcba9876543210fedcba"
ROWS = {"data": [{"x": float(x), "y": 2.0 * x} for x in range(5)]}
LINEAR = "sklearn.linear_model.LinearRegression"


def with_artifact_keys(settings: Settings, **artifacts: Any) -> Settings:
    return msgspec.structs.replace(settings, artifacts=make_settings(artifacts=artifacts).artifacts)


async def predict(client: httpx2.AsyncClient, version: int) -> httpx2.Response:
    return await client.post("/models/lin/predict", json={"data": [{"x": 3.0}], "version": version})


async def key_ids(raw: asyncpg.Connection) -> dict[int, str | None]:
    rows = await raw.fetch("SELECT version, artifact_key_id FROM model_versions ORDER BY version")
    return {r["version"]: r["artifact_key_id"] for r in rows}


async def test_after_a_rotation_old_versions_load_and_new_ones_are_signed_by_the_new_key(
    client_factory: ClientFactory, settings: Settings, run_worker: Worker, raw: asyncpg.Connection
) -> None:
    client_a = await client_factory(settings)
    await make_model(client_a, "lin", LINEAR, target="y")
    await run_job(client_a, run_worker, "lin", "train", ROWS)
    assert await key_ids(raw) == {1: "k1"}

    rotated = with_artifact_keys(settings, key_id="k2", hmac_key=KEY_B, hmac_keys={"k1": HMAC_KEY})
    client_b = await client_factory(rotated)
    answer = await predict(client_b, 1)
    assert answer.status_code == 200, answer.text
    assert json_of(answer)["predictions"] == pytest.approx([6.0])
    await run_job(client_b, burst_worker(rotated), "lin", "train", ROWS)
    assert await key_ids(raw) == {1: "k1", 2: "k2"}
    assert (await predict(client_b, 2)).status_code == 200

    model_id: int = await raw.fetchval("SELECT id FROM models WHERE name = 'lin'")
    db = Database(settings.database)
    await db.start()
    try:  # version 2's tag is B's: under another secret for k2 it does not verify
        assert await ArtifactStore(db, artifact_keys(key_id="k2", hmac_key=KEY_B)).load(model_id, 2)
        impostor = artifact_keys(key_id="k2", hmac_key=HMAC_KEY)
        with pytest.raises(signing.TamperedArtifact):
            await ArtifactStore(db, impostor).load(model_id, 2)
    finally:
        await db.close()


async def test_once_the_old_key_is_dropped_its_versions_are_the_tampered_artifact_problem(
    client_factory: ClientFactory, settings: Settings, run_worker: Worker, raw: asyncpg.Connection
) -> None:
    client_a = await client_factory(settings)
    await make_model(client_a, "lin", LINEAR, target="y")
    await run_job(client_a, run_worker, "lin", "train", ROWS)
    rotated = with_artifact_keys(settings, key_id="k2", hmac_key=KEY_B, hmac_keys={"k1": HMAC_KEY})
    client_b = await client_factory(rotated)
    await run_job(client_b, burst_worker(rotated), "lin", "train", ROWS)

    dropped = with_artifact_keys(settings, key_id="k2", hmac_key=KEY_B)
    client_c = await client_factory(dropped)
    assert (await predict(client_c, 2)).status_code == 200
    refused = await predict(client_c, 1)
    assert refused.status_code == 500
    assert refused.headers["content-type"] == "application/problem+json"
    assert json_of(refused)["detail"] == (
        "the stored model artifact failed verification and was not loaded"
    )
    assert "artifact_verification_failures_total 1.0" in (await client_c.get("/metrics")).text

    # The worker refuses it too: a batch prediction from version 1 fails, naming why.
    await make_dataset(client_c, "inputs", [{"x": 1.0}, {"x": 2.0}])
    body = {"dataset": {"name": "inputs"}, "output_dataset": "outputs", "version": 1}
    job = await submit(client_c, "lin", "batch-predictions", body)
    await burst_worker(dropped)()
    failed = await job_of(client_c, job["id"])
    assert failed["status"] == "failed" and failed["error"]["type"] == "TamperedArtifact"
