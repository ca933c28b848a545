"""Cross-resource scopes over the real app: a token with model scopes alone cannot read a dataset
by training on it or batch-predicting it, a refused request stores nothing, and the same
requests succeed once the token carries the dataset scopes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import pytest

from service.devtools.keys import DEV_AUDIENCE, DEV_ISSUER, mint_token, write_dev_jwks
from service.settings import Settings
from tests.factories import ClientFactory, Worker, auth_settings, json_of

pytestmark = pytest.mark.anyio

DUMMY = "sklearn.dummy.DummyClassifier"
MODEL_SCOPES = ("models:read", "models:write")
STAFF = [{"id": i, "team": f"t{i % 3}", "salary_band": f"band-{i % 2}"} for i in range(30)]
Bearer = Callable[..., dict[str, str]]


@pytest.fixture
async def app(
    client_factory: ClientFactory, settings: Settings, tmp_path: Path
) -> tuple[httpx2.AsyncClient, Bearer]:
    """The app in jwt mode with the development key, a `staff` dataset whose `salary_band` is
    the secret, and the `leak` model an attacker with model scopes targets at it."""
    key_file = tmp_path / "dev-jwk.json"
    auth = auth_settings(
        issuer=DEV_ISSUER,
        audience=DEV_AUDIENCE,
        jwks_url="",
        jwks_file=str(write_dev_jwks(key_file)),
        dev_key_file=str(key_file),
    )
    client = await client_factory(msgspec.structs.replace(settings, auth=auth))

    def bearer(*scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(auth, 'mallory', scopes, 600)}"}

    admin = bearer("admin")
    created = await client.post("/datasets", json={"name": "staff", "data": STAFF}, headers=admin)
    assert created.status_code == 201, created.text
    model = {"name": "leak", "model_type": DUMMY, "target": "salary_band"}
    assert (await client.post("/models", json=model, headers=admin)).status_code == 201
    return client, bearer


async def stored(client: httpx2.AsyncClient, bearer: Bearer) -> tuple[Any, ...]:
    """What a refused request could have left behind: jobs, versions, datasets."""
    admin = bearer("admin")
    jobs = json_of(await client.get("/jobs", headers=admin))
    versions = json_of(await client.get("/models/leak/versions", headers=admin))
    datasets = json_of(await client.get("/datasets", headers=admin))
    return jobs["total"], versions["total"], [d["name"] for d in datasets["items"]]


async def run(
    client: httpx2.AsyncClient,
    run_worker: Worker,
    bearer: Bearer,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
) -> dict[str, Any]:
    """Posts a job with `headers`, runs the worker, and checks the job succeeded."""
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code == 202, response.text
    await run_worker()
    job: dict[str, Any] = json_of(
        await client.get(f"/jobs/{json_of(response)['id']}", headers=bearer("models:read"))
    )
    assert job["status"] == "succeeded", job
    return job


def refused(response: httpx2.Response, required: str, missing: list[str]) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["www-authenticate"] == (
        f'Bearer error="insufficient_scope", scope="{required}"'
    )
    body = json_of(response)
    assert body["missing_scopes"] == missing
    assert all(f"'{scope}'" in body["detail"] for scope in missing)


@pytest.mark.parametrize("kind", ["train", "update"])
async def test_a_dataset_source_needs_datasets_read(
    app: tuple[httpx2.AsyncClient, Bearer], kind: str
) -> None:
    client, bearer = app
    before = await stored(client, bearer)
    source = {"dataset": {"name": "staff", "select": ["team", "salary_band"]}}
    headers = {**bearer(*MODEL_SCOPES), "Idempotency-Key": f"{kind}-1"}
    response = await client.post(f"/models/leak/{kind}", json=source, headers=headers)
    refused(response, "models:write datasets:read", ["datasets:read"])
    assert await stored(client, bearer) == before
    status = json_of(await client.get("/models/leak/status", headers=bearer("models:read")))
    assert status == {"status": "idle", "job": None}


async def test_inline_data_trains_with_model_scopes_alone(
    app: tuple[httpx2.AsyncClient, Bearer], run_worker: Worker
) -> None:
    client, bearer = app
    records = [{"team": "t1", "salary_band": "public"}, {"team": "t2", "salary_band": "public"}]
    body = {"data": records}
    job = await run(client, run_worker, bearer, "/models/leak/train", body, bearer(*MODEL_SCOPES))
    assert job["result"] == {"version": 1}


async def test_a_dataset_source_trains_with_datasets_read(
    app: tuple[httpx2.AsyncClient, Bearer], run_worker: Worker
) -> None:
    client, bearer = app
    source = {"dataset": {"name": "staff", "select": ["team", "salary_band"]}}
    headers = bearer(*MODEL_SCOPES, "datasets:read")
    await run(client, run_worker, bearer, "/models/leak/train", source, headers)
    version = json_of(await client.get("/models/leak/versions/1", headers=headers))
    assert version["rows"] == len(STAFF)
    job = await run(client, run_worker, bearer, "/models/leak/update", source, headers)
    assert job["result"] == {"version": 2}


async def test_batch_predictions_need_both_dataset_scopes(
    app: tuple[httpx2.AsyncClient, Bearer], run_worker: Worker
) -> None:
    client, bearer = app
    records = [{"team": "t1", "salary_band": "x"}, {"team": "t2", "salary_band": "y"}]
    inline = {"data": records}
    await run(client, run_worker, bearer, "/models/leak/train", inline, bearer(*MODEL_SCOPES))
    before = await stored(client, bearer)
    body = {"dataset": {"name": "staff"}, "output_dataset": "stolen"}
    required = "models:write datasets:read datasets:write"
    for scopes, missing in [
        (MODEL_SCOPES, ["datasets:read", "datasets:write"]),
        ((*MODEL_SCOPES, "datasets:read"), ["datasets:write"]),
        ((*MODEL_SCOPES, "datasets:write"), ["datasets:read"]),
    ]:
        headers = {**bearer(*scopes), "Idempotency-Key": "batch-1"}
        response = await client.post("/models/leak/batch-predictions", json=body, headers=headers)
        refused(response, required, missing)
    assert await stored(client, bearer) == before
    scopes = (*MODEL_SCOPES, "datasets:read", "datasets:write")
    headers = {**bearer(*scopes), "Idempotency-Key": "batch-1"}
    job = await run(client, run_worker, bearer, "/models/leak/batch-predictions", body, headers)
    assert job["result"] == {"dataset": "stolen", "rows": len(STAFF)}
