"""Helpers of the Open Inference Protocol tests: a trained iris model, rows, and the answers
of our own JSON route to compare with."""

from __future__ import annotations

from typing import Any

from tests.factories import AppClient, Worker, json_of, make_model, run_job
from tests.iris import IRIS_FEATURES, iris_records

FLOWERS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


async def train_iris(client: AppClient, run_worker: Worker, name: str = "iris") -> None:
    if (await client.get(f"/models/{name}")).status_code == 404:
        await make_model(
            client,
            name,
            "sklearn.linear_model.LogisticRegression",
            target="species",
            settings={"max_iter": 1000},
        )
    await run_job(client, run_worker, name, "train", {"data": iris_records()})


async def predicted(client: AppClient, name: str, output: str = "predict") -> list[Any]:
    records = [dict(zip(IRIS_FEATURES, row, strict=True)) for row in FLOWERS]
    response = await client.post(
        f"/models/{name}/predict", json={"data": records, "output": output}
    )
    assert response.status_code == 200, response.text
    values: list[Any] = json_of(response)["predictions"]
    return values


def matrix_request(rows: list[list[float]], **extra: Any) -> dict[str, Any]:
    flat = [v for row in rows for v in row]
    tensor = {"name": "x", "shape": [len(rows), 4], "datatype": "FP64", "data": flat}
    return {"inputs": [tensor], **extra}
