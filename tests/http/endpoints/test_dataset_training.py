"""Training and updating from a stored dataset: same model as inline, snapshot rows, errors."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx2
import pytest

from tests.factories import LOGREG, Worker, job_of, json_of, make_dataset, make_model, submit
from tests.iris import IRIS_FEATURES, iris_records

pytestmark = pytest.mark.anyio


def flowers() -> list[dict[str, Any]]:
    """Iris with an id, a split and a timestamp column the models do not use."""
    return [
        {
            "id": i,
            **r,
            "split": "train" if i % 3 else "test",
            "seen": f"2024-01-01T00:00:{i % 60:02d}Z",
        }
        for i, r in enumerate(iris_records())
    ]


async def predictions(client: httpx2.AsyncClient, name: str) -> list[Any]:
    rows = [{k: r[k] for k in IRIS_FEATURES} for r in iris_records()]
    body = {"data": rows, "output": "predict_proba"}
    response = await client.post(f"/models/{name}/predict", json=body)
    assert response.status_code == 200, response.text
    values: list[Any] = json_of(response)["predictions"]
    return values


async def test_filtered_dataset_trains_the_same_model_as_inline_rows(
    client: httpx2.AsyncClient, run_worker: Worker, database_url: str
) -> None:
    data = flowers()
    await make_dataset(client, "flowers", data)
    settings = {"max_iter": 500}
    for name in ("from_dataset", "inline"):
        await make_model(client, name, LOGREG, target="species", settings=settings)
    query = {
        "name": "flowers",
        "where": ["split = train", "petal_width > 0.15"],
        "order_by": ["sepal_length", "id"],
        "order_by_sort": ["desc"],
        "limit": 90,
    }
    job = await submit(
        client, "from_dataset", "train", {"dataset": query, "features": IRIS_FEATURES}
    )
    chosen = sorted(
        (r for r in data if r["split"] == "train" and r["petal_width"] > 0.15),
        key=lambda r: (-r["sepal_length"], r["id"]),
    )[:90]
    inline = [{k: r[k] for k in [*IRIS_FEATURES, "species"]} for r in chosen]
    await submit(client, "inline", "train", {"data": inline})
    await run_worker()
    assert (await job_of(client, job["id"]))["status"] == "succeeded"

    version = json_of(await client.get("/models/from_dataset/versions/1"))
    reference = json_of(await client.get("/models/inline/versions/1"))
    assert version["rows"] == reference["rows"] == 90
    assert version["source"] == {
        "kind": "dataset",
        "rows": 90,
        "query": {
            **query,
            "select": [],
            "where_boolean": "AND",
            "offset": 0,
            "group_by": [],
            "aggregate": [],
            "aggregate_func": [],
        },
    }
    assert version["metrics"] == reference["metrics"]
    assert await predictions(client, "from_dataset") == await predictions(client, "inline")

    conn = await asyncpg.connect(database_url)
    try:
        spec = await conn.fetchval("SELECT spec FROM jobs WHERE id = $1::uuid", job["id"])
    finally:
        await conn.close()
    assert '"batch_id"' in spec  # a retried attempt would reuse the snapshot


async def test_update_refits_on_the_snapshot_not_the_current_dataset(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    rows = [{"x": float(x), "y": 2.0 * x} for x in range(10)]
    await make_dataset(client, "line", rows)
    await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
    await submit(client, "lin", "train", {"dataset": {"name": "line"}})
    await run_worker()
    # The dataset changes after training; the next refit still uses the rows it trained on.
    await client.post("/datasets/line/rows", json={"data": [{"x": 100.0, "y": -1000.0}]})
    await submit(client, "lin", "update", {"data": [{"x": 10.0, "y": 20.0}]})
    await run_worker()
    version = json_of(await client.get("/models/lin/versions/2"))
    assert version["rows"] == 11 and version["kind"] == "update"
    predicted = json_of(await client.post("/models/lin/predict", json={"data": [{"x": 50.0}]}))
    assert predicted["predictions"][0] == pytest.approx(100.0)
    # An update from the dataset reads its current rows (here: all 11, the outlier included).
    job = await submit(client, "lin", "update", {"dataset": {"name": "line", "where": ["x > 50"]}})
    await run_worker()
    assert (await job_of(client, job["id"]))["status"] == "succeeded"
    assert json_of(await client.get("/models/lin/versions/3"))["rows"] == 12


async def test_submission_checks_the_dataset_and_query(client: httpx2.AsyncClient) -> None:
    await make_dataset(client, "flowers", flowers())
    await make_model(client, "iris", LOGREG, target="species")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"dataset": {"name": "nope"}}, "$.dataset.name"),
        ({"dataset": {"name": "flowers", "where": ["nope = 1"]}}, "$.dataset.where[0]"),
        ({"dataset": {"name": "flowers", "where": ["id = x"]}}, "$.dataset.where[0]"),
        ({"dataset": {"name": "flowers", "where": ["id ="]}}, "$.dataset.where[0]"),
        ({"dataset": {"name": "flowers", "where": ["__row > 1"]}}, "$.dataset.where[0]"),
        ({"dataset": {"name": "flowers", "select": ["id", "nope"]}}, "$.dataset.select[1]"),
        ({"dataset": {"name": "flowers", "order_by": ["nope"]}}, "$.dataset.order_by[0]"),
        (
            {"dataset": {"name": "flowers", "order_by": ["id"], "order_by_sort": ["up"]}},
            "$.dataset.order_by_sort[0]",
        ),
        ({"dataset": {"name": "flowers"}, "features": ["sepal_length", "nope"]}, "$.features[1]"),
        ({"dataset": {"name": "flowers", "select": ["sepal_length"]}}, "$.target"),
        ({"dataset": {"name": "flowers"}, "target": "nope"}, "$.target"),
    ]
    for body, loc in cases:
        response = await client.post("/models/iris/train", json=body)
        assert response.status_code == 422, (body, response.text)
        assert json_of(response)["errors"][0]["loc"] == loc, (body, response.text)
    assert json_of(await client.get("/jobs"))["total"] == 0


async def test_jobs_fail_cleanly_when_the_dataset_goes_or_matches_nothing(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await make_dataset(client, "flowers", flowers())
    await make_model(client, "iris", LOGREG, target="species")
    job = await submit(client, "iris", "train", {"dataset": {"name": "flowers"}})
    assert (await client.delete("/datasets/flowers")).status_code == 204
    await run_worker()
    failed = await job_of(client, job["id"])
    assert failed["status"] == "failed" and failed["attempts"] == 1
    assert failed["error"]["type"] == "DatasetGone" and "flowers" in failed["error"]["message"]

    await make_dataset(client, "flowers", flowers())
    job = await submit(
        client, "iris", "train", {"dataset": {"name": "flowers", "where": ["id < 0"]}}
    )
    await run_worker()
    failed = await job_of(client, job["id"])
    assert failed["status"] == "failed" and failed["error"]["type"] == "NoRows"
    assert json_of(await client.get("/models/iris"))["current_version"] is None
