"""The active-jobs quota of a tenant over the real app: exact under concurrent submissions,
batch predictions counted with training, room again once a job has finished, a replayed
submission never refused, and other tenants' jobs not counted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import pytest

from service.devtools.keys import DEV_AUDIENCE, DEV_ISSUER, mint_token, write_dev_jwks
from service.settings import Settings
from tests.factories import (
    AppClient,
    ClientFactory,
    Worker,
    auth_settings,
    json_of,
    make_dataset,
    make_model,
    run_job,
)

pytestmark = pytest.mark.anyio

DUMMY = "sklearn.dummy.DummyClassifier"
ROWS = [{"x": i, "y": i % 2} for i in range(30)]


async def quota_app(client_factory: ClientFactory, settings: Settings, quota: int) -> AppClient:
    limits = msgspec.structs.replace(settings.limits, active_jobs_per_tenant=quota)
    return await client_factory(msgspec.structs.replace(settings, limits=limits))


def is_quota_refusal(response: httpx2.Response) -> bool:
    if response.status_code != 429:
        return False
    problem = json_of(response)
    return (
        problem["type"] == "/problems/too-many-requests"
        and "queued or running jobs" in problem["detail"]
        and int(response.headers["retry-after"]) > 0
    )


async def test_concurrent_submissions_beyond_the_quota_are_429_exactly(
    client_factory: ClientFactory, settings: Settings
) -> None:
    client = await quota_app(client_factory, settings, quota=3)
    for i in range(12):
        await make_model(client, f"m{i}", DUMMY, target="y")
    answers = await asyncio.gather(
        *(client.post(f"/models/m{i}/train", json={"data": ROWS}) for i in range(12))
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [202] * 3 + [429] * 9, [r.text for r in answers]
    assert all(is_quota_refusal(r) for r in answers if r.status_code == 429)
    active = json_of(await client.get("/jobs", params={"status": "queued"}))
    assert active["total"] == 3
    refusals = client.services.metrics.registry.get_sample_value(
        "limit_refusals_total", {"limit": "active_jobs"}
    )
    assert refusals == 9.0


async def test_batch_predictions_count_and_a_finished_job_makes_room(
    client_factory: ClientFactory, settings: Settings, run_worker: Worker
) -> None:
    client = await quota_app(client_factory, settings, quota=1)
    await make_dataset(client, "points", ROWS)
    await make_model(client, "a", DUMMY, target="y")
    await make_model(client, "b", DUMMY, target="y")
    await run_job(client, run_worker, "a", "train", {"data": ROWS})

    batch = {"dataset": {"name": "points", "select": ["x"]}, "output_dataset": "scored"}
    queued = await client.post("/models/a/batch-predictions", json=batch)
    assert queued.status_code == 202, queued.text
    assert is_quota_refusal(await client.post("/models/b/train", json={"data": ROWS}))

    await run_worker()
    done = json_of(await client.get(f"/jobs/{json_of(queued)['id']}"))
    assert done["status"] == "succeeded", done
    assert (await client.post("/models/b/train", json={"data": ROWS})).status_code == 202


async def test_a_replayed_submission_is_not_refused_by_the_quota(
    client_factory: ClientFactory, settings: Settings
) -> None:
    client = await quota_app(client_factory, settings, quota=1)
    await make_model(client, "a", DUMMY, target="y")
    await make_model(client, "b", DUMMY, target="y")
    key = {"Idempotency-Key": "train-a"}
    first = await client.post("/models/a/train", json={"data": ROWS}, headers=key)
    assert first.status_code == 202, first.text
    assert is_quota_refusal(await client.post("/models/b/train", json={"data": ROWS}))
    replay = await client.post("/models/a/train", json={"data": ROWS}, headers=key)
    assert replay.status_code == 202 and json_of(replay)["id"] == json_of(first)["id"]


async def test_a_second_job_of_one_model_is_still_a_conflict_at_the_quota(
    client_factory: ClientFactory, settings: Settings
) -> None:
    client = await quota_app(client_factory, settings, quota=1)
    await make_model(client, "a", DUMMY, target="y")
    assert (await client.post("/models/a/train", json={"data": ROWS})).status_code == 202
    assert (await client.post("/models/a/train", json={"data": ROWS})).status_code == 409


async def test_another_tenants_jobs_do_not_count(
    client_factory: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    key_file = tmp_path / "dev-jwk.json"
    auth = auth_settings(
        issuer=DEV_ISSUER,
        audience=DEV_AUDIENCE,
        jwks_url="",
        jwks_file=str(write_dev_jwks(key_file)),
        dev_key_file=str(key_file),
    )
    limits = msgspec.structs.replace(settings.limits, active_jobs_per_tenant=1)
    client = await client_factory(msgspec.structs.replace(settings, auth=auth, limits=limits))

    def admin_of(tenant: str) -> dict[str, Any]:
        return {"Authorization": f"Bearer {mint_token(auth, 'ops', ['admin'], 600, tenant=tenant)}"}

    for tenant in ("acme", "globex"):
        headers = admin_of(tenant)
        for name in ("a", "b"):
            model = {"name": name, "model_type": DUMMY, "target": "y"}
            assert (await client.post("/models", json=model, headers=headers)).status_code == 201
    acme, globex = admin_of("acme"), admin_of("globex")
    assert (
        await client.post("/models/a/train", json={"data": ROWS}, headers=acme)
    ).status_code == 202
    assert is_quota_refusal(await client.post("/models/b/train", json={"data": ROWS}, headers=acme))
    assert (
        await client.post("/models/a/train", json={"data": ROWS}, headers=globex)
    ).status_code == 202
