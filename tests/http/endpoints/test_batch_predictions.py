"""Batch predictions into datasets: the same answers as online predictions, row for row; the
output columns; submission errors; and cancel leaves no output dataset."""

from __future__ import annotations

import asyncio
import csv
import io
import random
from typing import Any

import asyncpg
import httpx2
import msgspec
import pytest

from service.settings import Settings
from tests.factories import (
    CSV,
    LOGREG,
    ClientFactory,
    Worker,
    job_of,
    json_of,
    make_dataset,
    make_model,
    run_job,
    submit,
    wait_until,
)
from tests.iris import IRIS_FEATURES, iris_records

pytestmark = pytest.mark.anyio


def flower_rows(count: int, seed: int = 7) -> list[list[Any]]:
    """`[id, *features]` rows around the iris measurements."""
    rng = random.Random(seed)
    lows, highs = (4.3, 2.0, 1.0, 0.1), (7.9, 4.4, 6.9, 2.5)
    return [
        [
            i,
            *(
                round(rng.uniform(lo, hi), rng.randint(1, 12))
                for lo, hi in zip(lows, highs, strict=True)
            ),
        ]
        for i in range(count)
    ]


def as_csv(header: list[str], rows: list[list[Any]]) -> bytes:
    lines = [",".join(header)] + [",".join(repr(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


async def trained_iris(client: httpx2.AsyncClient, run_worker: Worker, name: str = "iris") -> None:
    await make_model(client, name, LOGREG, target="species", settings={"max_iter": 500})
    await run_job(client, run_worker, name, "train", {"data": iris_records()})


async def read_csv(client: httpx2.AsyncClient, name: str, **params: Any) -> list[list[str]]:
    response = await client.get(
        f"/datasets/{name}/rows", params=params, headers={"accept": "text/csv"}
    )
    assert response.status_code == 200, response.text
    return list(csv.reader(io.StringIO(response.text, newline="")))


async def test_batch_matches_online_predictions_row_for_row(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    rows = flower_rows(100_000)
    created = await client.post(
        "/datasets",
        params={"name": "field"},
        content=as_csv(["id", *IRIS_FEATURES], rows),
        headers=CSV,
    )
    assert created.status_code == 201 and json_of(created)["rows"] == 100_000
    await trained_iris(client, run_worker)

    body = {"dataset": {"name": "field", "select": ["id"]}, "output_dataset": "field_predicted"}
    response = await client.post("/models/iris/batch-predictions", json=body)
    assert response.status_code == 202, response.text
    job = json_of(response)
    assert job["kind"] == "batch_predict" and response.headers["location"] == f"/jobs/{job['id']}"
    await run_worker()
    done = await job_of(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["result"] == {"dataset": "field_predicted", "rows": 100_000}
    assert done["progress"] == 1.0

    meta = json_of(await client.get("/datasets/field_predicted"))
    assert meta["columns"] == [
        {"name": "id", "type": "integer"},
        {"name": "prediction", "type": "text"},
    ]
    assert meta["rows"] == 100_000 and meta["source"] == "/models/iris/versions/1"
    batch = await read_csv(client, "field_predicted", order_by="id")
    assert batch[0] == ["id", "prediction"]
    assert [int(r[0]) for r in batch[1:]] == list(range(100_000))

    online: list[Any] = []
    for start in range(0, len(rows), 10_000):  # `limits.max_predict_rows`
        chunk = [row[1:] for row in rows[start : start + 10_000]]
        answer = await client.post(
            "/models/iris/predict", json={"columns": IRIS_FEATURES, "rows": chunk}
        )
        assert answer.status_code == 200, answer.text
        online.extend(json_of(answer)["predictions"])
    assert [r[1] for r in batch[1:]] == online
    assert len(set(online)) == 3

    proba = {
        "dataset": {"name": "field", "where": ["id < 3000"], "order_by": ["id"]},
        "output_dataset": "field_proba",
        "output": "predict_proba",
    }
    job = json_of(await client.post("/models/iris/batch-predictions", json=proba))
    await run_worker()
    assert (await job_of(client, job["id"]))["result"] == {"dataset": "field_proba", "rows": 3000}
    page = json_of(
        await client.get("/datasets/field_proba/rows", params={"limit": 3000, "order_by": "id"})
    )
    first = page["items"][0]
    assert list(first) == [
        "id",
        *IRIS_FEATURES,
        "proba_setosa",
        "proba_versicolor",
        "proba_virginica",
    ]
    expected = json_of(
        await client.post(
            "/models/iris/predict",
            json={
                "columns": IRIS_FEATURES,
                "rows": [r[1:] for r in rows[:3000]],
                "output": "predict_proba",
            },
        )
    )["predictions"]
    for item, want in zip(page["items"], expected, strict=True):
        for label, value in want.items():
            assert item[f"proba_{label}"] == pytest.approx(value, rel=1e-12, abs=1e-15)


async def test_a_batch_prediction_that_cannot_run_is_refused_at_submission(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    header = ["id", "prediction", *IRIS_FEATURES[:3]]
    await client.post(
        "/datasets",
        params={"name": "d"},
        content=as_csv(header, [[1, 2, 3.0, 4.0, 5.0]]),
        headers=CSV,
    )
    await make_dataset(client, "full", iris_records())
    await make_model(client, "iris", LOGREG, target="species")
    ok = {"dataset": {"name": "full"}, "output_dataset": "out"}
    untrained = await client.post("/models/iris/batch-predictions", json=ok)
    assert untrained.status_code == 409
    await submit(client, "iris", "train", {"data": iris_records()})
    busy = await client.post("/models/iris/batch-predictions", json=ok)
    assert busy.status_code == 409  # one active job per model
    await run_worker()
    cases: list[tuple[str, dict[str, Any], int, str | None]] = [
        ("nope", ok, 404, None),
        ("iris", {**ok, "version": 9}, 404, None),
        ("iris", {**ok, "output": "transform"}, 422, "$.output"),
        ("iris", {**ok, "output_dataset": "full"}, 409, None),
        ("iris", {**ok, "output_dataset": "bad name"}, 422, "$.output_dataset"),
        ("iris", {**ok, "dataset": {"name": "nope"}}, 422, "$.dataset.name"),
        ("iris", {**ok, "dataset": {"name": "d"}}, 422, "$.dataset.name"),  # lacks petal_width
        (
            "iris",
            {**ok, "dataset": {"name": "full", "where": ["x = 1"]}},
            422,
            "$.dataset.where[0]",
        ),
        (
            "iris",
            {**ok, "dataset": {"name": "full", "select": ["nope"]}},
            422,
            "$.dataset.select[0]",
        ),
        ("iris", {**ok, "extra": 1}, 422, "$"),
    ]
    for model, body, status, loc in cases:
        response = await client.post(f"/models/{model}/batch-predictions", json=body)
        assert response.status_code == status, (body, response.text)
        if loc is not None:
            assert json_of(response)["errors"][0]["loc"] == loc, (body, response.text)
    await client.post(
        "/datasets", json={"name": "clash", "data": [{**iris_records()[0], "prediction": "x"}]}
    )
    clash = {"dataset": {"name": "clash"}, "output_dataset": "o"}
    response = await client.post("/models/iris/batch-predictions", json=clash)
    assert (
        response.status_code == 422 and json_of(response)["errors"][0]["loc"] == "$.dataset.select"
    )
    jobs = json_of(await client.get("/jobs", params={"kind": "batch_predict"}))
    assert jobs["total"] == 0

    # No matching rows: an empty output dataset that still has the prediction column.
    empty = {"dataset": {"name": "full", "where": ["sepal_length < 0"]}, "output_dataset": "none"}
    key = {"Idempotency-Key": "once"}
    job = json_of(await client.post("/models/iris/batch-predictions", json=empty, headers=key))
    again = await client.post("/models/iris/batch-predictions", json=empty, headers=key)
    assert again.status_code == 202 and json_of(again)["id"] == job["id"]
    assert again.headers["idempotent-replayed"] == "true"
    await run_worker()
    assert (await job_of(client, job["id"]))["result"] == {"dataset": "none", "rows": 0}
    assert json_of(await client.get("/datasets/none"))["columns"][-1] == {
        "name": "prediction",
        "type": "text",
    }


async def held_mid_way(conn: asyncpg.Connection, job_id: str) -> bool:
    """Locks the job's row once some rows are predicted, if the job is still running: until
    `conn`'s transaction ends, the worker can neither record progress nor finish the job."""
    row = await conn.fetchrow(
        "SELECT status, progress FROM jobs WHERE id = $1::uuid FOR UPDATE", job_id
    )
    assert row is not None and row["status"] in ("queued", "running"), (
        f"the job ended ({row}) before it could be cancelled mid-way: give it more rows"
    )
    if row["status"] == "running" and (row["progress"] or 0) > 0:
        return True
    await conn.execute("ROLLBACK; BEGIN")  # let the worker go on until the next look
    return False


async def blocked_by(conn: asyncpg.Connection, application_name: str) -> bool:
    """Whether a session of `application_name` is waiting for a lock that `conn` holds."""
    waiting = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = $1 AND $2 = ANY(pg_blocking_pids(pid))",
        application_name,
        conn.get_server_pid(),
    )
    return bool(waiting)


async def test_cancel_stops_the_job_and_leaves_no_output(
    client: httpx2.AsyncClient,
    client_factory: ClientFactory,
    settings: Settings,
    run_worker: Worker,
    database_url: str,
) -> None:
    rows = flower_rows(60_000, seed=3)
    await client.post(
        "/datasets",
        params={"name": "many"},
        content=as_csv(["id", *IRIS_FEATURES], rows),
        headers=CSV,
    )
    # Brute-force neighbours over 20 000 rows: each chunk of 10 000 predictions takes a while.
    training = [
        dict(zip(["id", *IRIS_FEATURES], r, strict=True)) for r in flower_rows(20_000, seed=4)
    ]
    for record in training:
        record["big"] = record["petal_length"] > 4
    await make_model(
        client,
        "knn",
        "sklearn.neighbors.KNeighborsClassifier",
        target="big",
        features=IRIS_FEATURES,
        settings={"algorithm": "brute", "n_neighbors": 15},
    )
    await submit(client, "knn", "train", {"data": training})
    await run_worker()
    body = {"dataset": {"name": "many"}, "output_dataset": "never"}
    job = json_of(await client.post("/models/knn/batch-predictions", json=body))
    # The cancel comes from an api whose connections PostgreSQL can tell apart.
    database = msgspec.structs.replace(
        settings.database, url=f"{settings.database.url}?application_name=canceller"
    )
    canceller = await client_factory(msgspec.structs.replace(settings, database=database))
    holder = await asyncpg.connect(database_url)
    worker = asyncio.ensure_future(run_worker())
    try:
        await holder.execute("BEGIN")
        await wait_until(lambda: held_mid_way(holder, job["id"]), 60, "rows to be predicted")
        # The cancel queues behind the lock, ahead of anything the worker does next, so the job
        # cannot succeed first, however fast the worker is.
        cancelling = asyncio.ensure_future(canceller.post(f"/jobs/{job['id']}/cancel"))
        await wait_until(lambda: blocked_by(holder, "canceller"), 10, "the cancel to queue")
        await holder.execute("COMMIT")
        cancelled = await cancelling
        assert cancelled.status_code == 202, cancelled.text
        await asyncio.wait_for(worker, 60)
    finally:
        worker.cancel()
        await holder.close()
    final = await job_of(client, job["id"])
    assert final["status"] == "cancelled" and final["result"] is None
    assert (await client.get("/datasets/never")).status_code == 404
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'datasets'")
    finally:
        await conn.close()
    assert tables == 1  # only the input
    again = json_of(
        await client.post(
            "/models/knn/batch-predictions",
            json={**body, "dataset": {"name": "many", "limit": 100}},
        )
    )
    await run_worker()
    assert (await job_of(client, again["id"]))["result"] == {"dataset": "never", "rows": 100}
