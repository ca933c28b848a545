"""A train or update request's `settings` are for the version it makes only: merged over the
model's, checked like them before anything is stored, and recorded on the version as used."""

from __future__ import annotations

from typing import Any

import httpx2
import msgspec
import pytest

from service.settings import Settings
from tests.factories import (
    LOGREG,
    ClientFactory,
    Worker,
    burst_worker,
    json_of,
    make_model,
    run_job,
    submit,
)
from tests.iris import iris_records

pytestmark = pytest.mark.anyio

FOREST = "sklearn.ensemble.RandomForestClassifier"
SGD = "sklearn.linear_model.SGDClassifier"


async def version(client: httpx2.AsyncClient, name: str, number: int) -> dict[str, Any]:
    found: dict[str, Any] = json_of(await client.get(f"/models/{name}/versions/{number}"))
    return found


async def model_settings(client: httpx2.AsyncClient, name: str) -> dict[str, Any]:
    settings: dict[str, Any] = json_of(await client.get(f"/models/{name}"))["settings"]
    return settings


async def refused(
    client: httpx2.AsyncClient, name: str, kind: str, body: dict[str, Any]
) -> dict[str, str]:
    """Posts a job that must be a 422 leaving no job behind; returns its errors by `loc`."""
    jobs_before = json_of(await client.get("/jobs", params={"model": name}))["total"]
    response = await client.post(f"/models/{name}/{kind}", json=body)
    assert response.status_code == 422, response.text
    assert json_of(await client.get("/jobs", params={"model": name}))["total"] == jobs_before
    return {error["loc"]: error["msg"] for error in json_of(response)["errors"]}


async def test_a_trained_version_uses_the_request_settings_and_the_model_keeps_its_own(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await make_model(client, "iris", LOGREG, target="species", settings={"max_iter": 500})
    body = {"data": iris_records(), "settings": {"C": 0.5}}
    done = await run_job(client, run_worker, "iris", "train", body)
    first = await version(client, "iris", done["result"]["version"])
    assert first["settings"]["C"] == 0.5
    assert first["settings"]["max_iter"] == 500  # the model's, merged under the request's
    assert await model_settings(client, "iris") == {"max_iter": 500}

    done = await run_job(client, run_worker, "iris", "train", {"data": iris_records()})
    second = await version(client, "iris", done["result"]["version"])
    assert second["settings"]["C"] == 1.0 and second["settings"]["max_iter"] == 500


async def test_an_unknown_setting_is_a_422_naming_it_and_stores_no_job(
    client: httpx2.AsyncClient,
) -> None:
    await make_model(client, "iris", LOGREG, target="species")
    errors = await refused(
        client, "iris", "train", {"data": iris_records(), "settings": {"not_a_param": 1}}
    )
    assert list(errors) == ["$.settings.not_a_param"]
    errors = await refused(client, "iris", "train", {"data": iris_records(), "settings": {"C": -1}})
    assert list(errors) == ["$.settings.C"]
    assert json_of(await client.get("/models/iris/status"))["status"] == "idle"


async def test_a_setting_beyond_the_model_limits_is_a_422_naming_it(
    client: httpx2.AsyncClient,
) -> None:
    await make_model(client, "forest", FOREST, target="species", settings={"n_estimators": 10})
    body = {"data": iris_records(), "settings": {"n_estimators": 100_000_000}}
    errors = await refused(client, "forest", "train", body)
    assert "models.limits" in errors["$.settings.n_estimators"]


async def test_a_model_setting_beyond_lowered_limits_is_refused_until_the_request_overrides_it(
    client_factory: ClientFactory, settings: Settings, run_worker: Worker
) -> None:
    before = await client_factory(settings)
    await make_model(before, "forest", FOREST, target="species", settings={"n_estimators": 50})
    models = settings.models
    lowered = msgspec.structs.replace(
        models, limits=msgspec.structs.replace(models.limits, n_estimators=20)
    )
    client = await client_factory(msgspec.structs.replace(settings, models=lowered))
    errors = await refused(client, "forest", "train", {"data": iris_records()})
    assert "the model's value" in errors["$.settings.n_estimators"]
    body = {"data": iris_records(), "settings": {"n_estimators": 5}}
    done = await run_job(client, run_worker, "forest", "train", body)
    assert (await version(client, "forest", done["result"]["version"]))["settings"][
        "n_estimators"
    ] == 5


async def test_a_refit_update_uses_the_request_settings_for_its_version_only(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await make_model(client, "iris", LOGREG, target="species", settings={"max_iter": 500})
    await run_job(client, run_worker, "iris", "train", {"data": iris_records()[::2]})
    body = {"data": iris_records()[1::2], "settings": {"C": 0.25}}
    done = await run_job(client, run_worker, "iris", "update", body)
    refit = await version(client, "iris", done["result"]["version"])
    assert refit["kind"] == "update" and refit["rows"] == 150
    assert refit["settings"]["C"] == 0.25 and refit["settings"]["max_iter"] == 500
    assert await model_settings(client, "iris") == {"max_iter": 500}

    done = await run_job(client, run_worker, "iris", "update", {"data": iris_records()[:10]})
    assert (await version(client, "iris", done["result"]["version"]))["settings"]["C"] == 1.0


async def test_an_incremental_update_refuses_settings_since_partial_fit_keeps_them(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await make_model(client, "sgd", SGD, target="species", settings={"alpha": 0.001})
    await run_job(client, run_worker, "sgd", "train", {"data": iris_records()[::2]})
    body = {"data": iris_records()[1::2], "settings": {"alpha": 0.01}}
    errors = await refused(client, "sgd", "update", body)
    assert list(errors) == ["$.settings"] and "partial_fit" in errors["$.settings"]

    body = {"data": iris_records()[1::2], "settings": {}}
    done = await run_job(client, run_worker, "sgd", "update", body)
    assert (await version(client, "sgd", done["result"]["version"]))["settings"]["alpha"] == 0.001


async def test_an_n_jobs_override_is_clamped_to_the_fit_threads_and_recorded(
    client: httpx2.AsyncClient, settings: Settings
) -> None:
    run = burst_worker(
        msgspec.structs.replace(
            settings, worker=msgspec.structs.replace(settings.worker, fit_threads=2)
        )
    )
    await make_model(client, "forest", FOREST, target="species", settings={"n_estimators": 10})
    body = {"data": iris_records(), "settings": {"n_jobs": 8}}
    done = await run_job(client, run, "forest", "train", body)
    assert (await version(client, "forest", done["result"]["version"]))["settings"]["n_jobs"] == 2
    assert await model_settings(client, "forest") == {"n_estimators": 10}


async def test_a_repeated_idempotency_key_with_other_settings_is_another_body(
    client: httpx2.AsyncClient,
) -> None:
    await make_model(client, "iris", LOGREG, target="species")
    body = {"data": iris_records()[:30], "settings": {"C": 0.5}}
    first = await submit(client, "iris", "train", body, **{"Idempotency-Key": "k1"})
    again = await client.post("/models/iris/train", json=body, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 202 and json_of(again)["id"] == first["id"]
    other = {**body, "settings": {"C": 0.25}}
    response = await client.post(
        "/models/iris/train", json=other, headers={"Idempotency-Key": "k1"}
    )
    assert response.status_code == 422
    assert [error["loc"] for error in json_of(response)["errors"]] == ["Idempotency-Key"]
