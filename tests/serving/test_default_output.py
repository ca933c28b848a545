"""A request that names no output gets the same one online and in a batch job, chosen by the
one rule of `estimators.model_type.default_output`: a transformer transforms."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx2
import pytest

from tests.factories import json_of
from tests.iris import IRIS_FEATURES, iris_records

pytestmark = pytest.mark.anyio

Worker = Callable[[], Awaitable[None]]


async def test_a_transformer_transforms_online_and_in_a_batch_when_no_output_is_named(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    model = {
        "name": "pca",
        "model_type": "sklearn.decomposition.PCA",
        "features": IRIS_FEATURES,
        "settings": {"n_components": 2},
    }
    assert (await client.post("/models", json=model)).status_code == 201
    records = [{f: r[f] for f in IRIS_FEATURES} for r in iris_records()]
    assert (await client.post("/models/pca/train", json={"data": records})).status_code == 202
    assert (await client.post("/datasets", json={"name": "flowers", "data": records})).is_success
    await run_worker()

    first = {"data": records[:1]}
    unnamed = json_of(await client.post("/models/pca/predict", json=first))
    named = json_of(await client.post("/models/pca/predict", json={**first, "output": "transform"}))
    assert unnamed["predictions"] == named["predictions"]
    assert len(unnamed["predictions"][0]) == 2

    batch = {"dataset": {"name": "flowers"}, "output_dataset": "projected"}
    job = json_of(await client.post("/models/pca/batch-predictions", json=batch))
    await run_worker()
    assert json_of(await client.get(f"/jobs/{job['id']}"))["status"] == "succeeded"
    columns = [c["name"] for c in json_of(await client.get("/datasets/projected"))["columns"]]
    assert columns == [*IRIS_FEATURES, "component_0", "component_1"]
