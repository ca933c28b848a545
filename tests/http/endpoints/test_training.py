"""Train, update, predict, versions and rollback end to end, with a real in-process worker."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from tests.factories import Worker, job_of, json_of, make_model, submit
from tests.iris import IRIS_FEATURES, iris_records

pytestmark = pytest.mark.anyio


async def test_train_iris_then_predict(client: httpx2.AsyncClient, run_worker: Worker) -> None:
    await make_model(
        client,
        "iris",
        "sklearn.linear_model.LogisticRegression",
        target="species",
        settings={"max_iter": 500},
    )
    records = iris_records()
    job = await submit(client, "iris", "train", {"data": records})
    assert job["status"] == "queued" and job["kind"] == "train"
    status = json_of(await client.get("/models/iris/status"))
    assert status["status"] == "queued" and status["job"]["id"] == job["id"]
    await run_worker()
    done = await job_of(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["result"] == {"version": 1}
    assert done["attempts"] == 1 and done["started_at"] and done["finished_at"]
    model = json_of(await client.get("/models/iris"))
    assert model["current_version"] == 1 and model["status"] == "succeeded"

    version = json_of(await client.get("/models/iris/versions/1"))
    assert version["rows"] == 150 and version["kind"] == "train"
    assert version["source"] == "inline"
    assert version["features"] == IRIS_FEATURES
    assert 0.8 <= version["metrics"]["accuracy"] <= 1.0
    assert "f1_macro" in version["metrics"] or "f1" in version["metrics"]
    assert version["library_versions"]["scikit-learn"]
    assert len(version["artifact_sha256"]) == 64 and version["artifact_bytes"] > 0

    features_only = [{k: r[k] for k in IRIS_FEATURES} for r in records]
    response = await client.post("/models/iris/predict", json={"data": features_only})
    assert response.status_code == 200, response.text
    body = json_of(response)
    assert body["model"] == "iris" and body["version"] == 1
    correct = sum(p == r["species"] for p, r in zip(body["predictions"], records, strict=True))
    assert correct / len(records) >= 0.9

    proba = json_of(
        await client.post(
            "/models/iris/predict",
            json={
                "columns": IRIS_FEATURES,
                "rows": [[5.1, 3.5, 1.4, 0.2]],
                "output": "predict_proba",
            },
        )
    )
    assert set(proba["predictions"][0]) == {"setosa", "versicolor", "virginica"}
    assert proba["predictions"][0]["setosa"] > 0.5


async def test_an_incremental_update_of_sgd_extends_the_current_version(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await make_model(
        client,
        "sgd",
        "sklearn.linear_model.SGDClassifier",
        target="species",
        settings={"random_state": 0},
    )
    records = iris_records()
    await submit(client, "sgd", "train", {"data": records[::2]})
    await run_worker()
    job = await submit(client, "sgd", "update", {"data": records[1::2]})
    await run_worker()
    done = await job_of(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["result"] == {"version": 2}
    version = json_of(await client.get("/models/sgd/versions/2"))
    assert version["kind"] == "update" and version["parent_version"] == 1
    assert version["rows"] == 150


async def test_update_refits_on_both_batches(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
    first = [{"x": float(x), "y": 2.0 * x} for x in range(10)]
    second = [{"x": float(x), "y": 2.0 * x} for x in range(10, 20)]
    await submit(client, "lin", "train", {"data": first})
    await run_worker()
    await submit(client, "lin", "update", {"data": second})
    await run_worker()
    version = json_of(await client.get("/models/lin/versions/2"))
    assert version["rows"] == 20
    prediction = json_of(await client.post("/models/lin/predict", json={"data": [{"x": 100.0}]}))
    assert prediction["predictions"][0] == pytest.approx(200.0)
    # The original re-fit on the newest batch only; a constant batch would have erased the slope.
    await submit(client, "lin", "update", {"data": [{"x": 0.0, "y": 0.0}] * 3})
    await run_worker()
    prediction = json_of(await client.post("/models/lin/predict", json={"data": [{"x": 100.0}]}))
    assert prediction["predictions"][0] == pytest.approx(200.0, rel=0.05)


async def test_activating_an_older_version_rolls_the_model_back(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
    await submit(
        client, "lin", "train", {"data": [{"x": float(x), "y": 1.0 * x} for x in range(5)]}
    )
    await run_worker()
    await submit(
        client, "lin", "train", {"data": [{"x": float(x), "y": 3.0 * x} for x in range(5)]}
    )
    await run_worker()

    async def predict_at_10() -> tuple[int, float]:
        body = json_of(await client.post("/models/lin/predict", json={"data": [{"x": 10.0}]}))
        return body["version"], body["predictions"][0]

    assert await predict_at_10() == pytest.approx((2, 30.0))
    activated = await client.post("/models/lin/versions/1/activate")
    assert activated.status_code == 200 and json_of(activated)["current_version"] == 1
    assert await predict_at_10() == pytest.approx((1, 10.0))
    pinned = json_of(
        await client.post("/models/lin/predict", json={"data": [{"x": 10.0}], "version": 2})
    )
    assert pinned["predictions"][0] == pytest.approx(30.0)
    versions = json_of(await client.get("/models/lin/versions"))
    assert [v["version"] for v in versions["items"]] == [2, 1] and versions["total"] == 2
    assert [v["current"] for v in versions["items"]] == [False, True]
    assert (await client.post("/models/lin/versions/9/activate")).status_code == 404
    assert (await client.get("/models/lin/versions/x")).status_code == 404


async def test_submission_conflicts_and_validation(client: httpx2.AsyncClient) -> None:
    await make_model(client, "iris", "sklearn.linear_model.LogisticRegression", target="species")
    data = iris_records()[:20]
    missing = await client.post("/models/nope/train", json={"data": data})
    assert missing.status_code == 404
    both = await client.post("/models/iris/train", json={"data": data, "dataset": {"name": "d"}})
    assert both.status_code == 422
    neither = await client.post("/models/iris/train", json={})
    assert neither.status_code == 422
    no_target = await client.post("/models/iris/train", json={"data": [{"a": 1.0}]})
    assert no_target.status_code == 422
    assert "species" in no_target.text
    bad_features = await client.post(
        "/models/iris/train", json={"data": data, "features": ["nope"]}
    )
    assert bad_features.status_code == 422 and "nope" in bad_features.text
    nested = await client.post("/models/iris/train", json={"data": [{"a": {"b": 1}}]})
    assert nested.status_code == 422 and json_of(nested)["errors"][0]["loc"].startswith("$.data[0]")
    update_untrained = await client.post("/models/iris/update", json={"data": data})
    assert update_untrained.status_code == 409
    await submit(client, "iris", "train", {"data": data})
    busy = await client.post("/models/iris/train", json={"data": data})
    assert busy.status_code == 409
    not_trained = await client.post("/models/iris/predict", json={"data": [{"a": 1}]})
    assert not_trained.status_code == 409


async def test_a_repeated_idempotency_key_replays_the_first_job_and_refuses_another_body(
    client: httpx2.AsyncClient,
) -> None:
    await make_model(client, "iris", "sklearn.linear_model.LogisticRegression", target="species")
    body = {"data": iris_records()[:30]}
    first = await submit(client, "iris", "train", body, **{"Idempotency-Key": "k1"})
    again = await client.post("/models/iris/train", json=body, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 202 and json_of(again)["id"] == first["id"]
    other = await client.post(
        "/models/iris/train", json={"data": iris_records()[:31]}, headers={"Idempotency-Key": "k1"}
    )
    assert other.status_code == 422
    jobs = json_of(await client.get("/jobs", params={"model": "iris"}))
    assert jobs["total"] == 1


async def test_cancel_queued_job_and_finished_job(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await make_model(client, "iris", "sklearn.linear_model.LogisticRegression", target="species")
    job = await submit(client, "iris", "train", {"data": iris_records()[:40]})
    cancelled = await client.post("/models/iris/cancel")
    assert cancelled.status_code == 202 and json_of(cancelled)["status"] == "cancelled"
    assert (await client.post("/models/iris/cancel")).status_code == 409
    assert (await client.post(f"/jobs/{job['id']}/cancel")).status_code == 409
    await run_worker()  # the worker sees the cancelled row and does nothing
    model = json_of(await client.get("/models/iris"))
    assert model["current_version"] is None and model["status"] == "cancelled"
    assert (await client.get("/jobs/00000000-0000-0000-0000-000000000000")).status_code == 404
    assert (await client.get("/jobs/not-a-uuid")).status_code == 404


async def test_estimator_error_fails_without_retry(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await make_model(client, "one", "sklearn.linear_model.LogisticRegression", target="y")
    job = await submit(
        client, "one", "train", {"data": [{"x": float(i), "y": "a"} for i in range(30)]}
    )
    await run_worker()
    done = await job_of(client, job["id"])
    assert done["status"] == "failed" and done["attempts"] == 1
    assert done["error"]["type"] and "class" in done["error"]["message"]
    assert json_of(await client.get("/models/one"))["current_version"] is None


async def test_missing_values_fail_naming_row_and_column(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
    rows: list[dict[str, Any]] = [{"x": float(i), "y": float(i)} for i in range(10)]
    rows[7]["x"] = None
    response = await client.post("/models/lin/train", json={"data": rows})
    if response.status_code == 202:  # detected by the worker rather than at submission
        await run_worker()
        done = await job_of(client, json_of(response)["id"])
        assert done["status"] == "failed"
        assert "7" in done["error"]["message"] and "x" in done["error"]["message"]
    else:
        assert response.status_code == 422
        assert "7" in response.text


async def test_text_features_one_hot(client: httpx2.AsyncClient, run_worker: Worker) -> None:
    await make_model(client, "txt", "sklearn.tree.DecisionTreeClassifier", target="y")
    data = [
        {"colour": c, "size": float(i % 7), "y": c == "red"}
        for i, c in enumerate(["red", "blue", "green"] * 10)
    ]
    await submit(client, "txt", "train", {"data": data})
    await run_worker()
    body = json_of(
        await client.post(
            "/models/txt/predict",
            json={
                "data": [
                    {"colour": "red", "size": 1.0},
                    {"colour": "purple", "size": 1.0},
                ]
            },
        )
    )
    assert body["predictions"][0] is True
    assert body["predictions"][1] in (True, False)


async def test_delete_removes_versions_and_jobs(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
    job = await submit(
        client, "lin", "train", {"data": [{"x": 1.0, "y": 1.0}, {"x": 2.0, "y": 2.0}]}
    )
    await run_worker()
    assert (await client.delete("/models/lin")).status_code == 204
    assert (await client.get(f"/jobs/{job['id']}")).status_code == 404
    await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
    assert json_of(await client.get("/models/lin/versions"))["total"] == 0


async def test_row_limit_and_updated_at(
    client_factory: Any, settings: Any, run_worker: Worker
) -> None:
    import msgspec

    small = msgspec.structs.replace(
        settings, worker=msgspec.structs.replace(settings.worker, max_train_rows=5)
    )
    client = await client_factory(small)
    await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
    rows = [{"x": float(i), "y": float(i)} for i in range(6)]
    too_many = await client.post("/models/lin/train", json={"data": rows})
    assert too_many.status_code == 422 and json_of(too_many)["errors"][0]["loc"] == "$.data"
    before = json_of(await client.get("/models/lin"))["updated_at"]
    await submit(client, "lin", "train", {"data": rows[:5]})
    await run_worker()
    after = json_of(await client.get("/models/lin"))["updated_at"]
    assert after > before
