"""Online predictions: cache invalidation, single-flight loads, micro-batching, limits, outputs."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx2
import msgspec
import pytest

from service.settings import Settings
from tests.factories import (
    AppClient,
    ClientFactory,
    Worker,
    burst_worker,
    json_of,
    make_model,
    run_job,
    submit,
    wait_until,
)
from tests.iris import IRIS_FEATURES, iris_records
from tests.serving import plugin_held

pytestmark = pytest.mark.anyio


async def train_line(
    client: httpx2.AsyncClient, run_worker: Worker, name: str, slope: float
) -> None:
    if (await client.get(f"/models/{name}")).status_code == 404:
        await make_model(client, name, "sklearn.linear_model.LinearRegression", target="y")
    data = [{"x": float(x), "y": slope * x} for x in range(10)]
    await run_job(client, run_worker, name, "train", {"data": data})


async def predict_x(
    client: httpx2.AsyncClient, name: str, x: float, **extra: Any
) -> dict[str, Any]:
    response = await client.post(f"/models/{name}/predict", json={"data": [{"x": x}], **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = json_of(response)
    return body


async def test_activation_in_one_api_reaches_the_other(
    client_factory: ClientFactory, settings: Settings, run_worker: Worker
) -> None:
    first = await client_factory(settings)
    second = await client_factory(settings)
    await train_line(first, run_worker, "lin", 1.0)
    await train_line(first, run_worker, "lin", 3.0)
    assert (await predict_x(second, "lin", 10.0))["version"] == 2  # now cached in `second`
    assert (await first.post("/models/lin/versions/1/activate")).status_code == 200

    async def serves_version_1() -> bool:  # the notification travels through PostgreSQL
        return bool((await predict_x(second, "lin", 10.0))["version"] == 1)

    await wait_until(serves_version_1, 30, "the other api to serve the activated version")
    assert (await predict_x(second, "lin", 10.0))["predictions"][0] == pytest.approx(10.0)


async def test_delete_and_recreate_is_not_served_from_cache(
    client_factory: ClientFactory, settings: Settings, run_worker: Worker
) -> None:
    first = await client_factory(settings)
    second = await client_factory(settings)
    await train_line(first, run_worker, "lin", 1.0)
    assert (await predict_x(second, "lin", 1.0))["predictions"][0] == pytest.approx(1.0)
    assert (await first.delete("/models/lin")).status_code == 204

    async def forgotten() -> bool:
        response = await second.post("/models/lin/predict", json={"data": [{"x": 1.0}]})
        return response.status_code == 404

    await wait_until(forgotten, 30, "the other api to forget the deleted model")
    await train_line(first, run_worker, "lin", 5.0)
    assert (await predict_x(second, "lin", 1.0))["predictions"][0] == pytest.approx(5.0)


async def test_cold_load_happens_once_for_a_burst(client: AppClient, run_worker: Worker) -> None:
    await train_line(client, run_worker, "lin", 2.0)
    registry = client.services.registry
    registry.forget_all()
    loads = registry.models.loads
    responses = await asyncio.gather(
        *(client.post("/models/lin/predict", json={"data": [{"x": 1.0}]}) for _ in range(100))
    )
    assert all(r.status_code == 200 for r in responses)
    assert registry.models.loads == loads + 1


async def test_coalesced_answers_land_on_the_right_requests(
    client: AppClient, run_worker: Worker
) -> None:
    await train_line(client, run_worker, "lin", 2.0)
    batcher = client.services.predictor.batcher
    calls, requests = batcher.calls, batcher.requests

    async def one(i: int) -> tuple[int, Any]:
        rows = [{"x": float(i)}, {"x": float(i) + 0.5}] if i % 3 else [{"x": float(i)}]
        body = json_of(await client.post("/models/lin/predict", json={"data": rows}))
        return i, body["predictions"]

    results = await asyncio.gather(*(one(i) for i in range(200)))
    for i, predictions in results:
        expected = [2.0 * i, 2.0 * i + 1.0] if i % 3 else [2.0 * i]
        assert predictions == pytest.approx(expected)
    assert batcher.requests - requests == 200
    assert batcher.calls - calls < 200  # some requests shared a call


async def test_a_bad_request_in_a_batch_fails_alone(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await train_line(client, run_worker, "lin", 2.0)
    good = [client.post("/models/lin/predict", json={"data": [{"x": float(i)}]}) for i in range(30)]
    bad = [
        client.post("/models/lin/predict", json={"data": [{"x": "not a number"}]}) for _ in range(5)
    ]
    missing = [client.post("/models/lin/predict", json={"data": [{"z": 1.0}]}) for _ in range(5)]
    responses = await asyncio.gather(*good, *bad, *missing)
    assert [r.status_code for r in responses[:30]] == [200] * 30
    assert [r.status_code for r in responses[30:]] == [422] * 10
    assert "x" in json_of(responses[30])["errors"][0]["loc"]


def with_held_plugin(settings: Settings, **models: Any) -> Settings:
    return msgspec.structs.replace(
        settings,
        http=msgspec.structs.replace(settings.http, predict_timeout=2.0),
        models=msgspec.structs.replace(settings.models, plugins=[plugin_held.__name__], **models),
    )


async def test_a_timed_out_prediction_keeps_its_thread_busy_until_it_really_returns(
    client_factory: ClientFactory, settings: Settings
) -> None:
    """One thread, one waiting place. A held prediction times out (504) but its thread stays
    counted busy: a request for another model waits instead of being queued behind it on the
    pool, the next is refused at once (503), and nothing runs until the thread returns."""
    held = with_held_plugin(settings, predict_threads=1, predict_queue=1)
    client = await client_factory(held)
    batcher = client.services.predictor.batcher
    rows = {"data": [{"x": float(x), "y": 1.0} for x in range(30)]}
    for name in ("a", "b"):
        await make_model(client, name, plugin_held.NAME, target="y")
        await submit(client, name, "train", rows)
    await burst_worker(held)()
    one = {"data": [{"x": 1.0}]}
    plugin_held.HOLD.set()
    try:
        timed_out = await client.post("/models/a/predict", json=one)
        assert timed_out.status_code == 504
        assert json_of(timed_out)["type"] == "/problems/timeout"
        assert batcher.busy == 1  # answered, and its thread still counted busy
        await wait_until(lambda: plugin_held.running == 1, 10, "the held call to be running")
        waiting = asyncio.ensure_future(client.post("/models/b/predict", json=one))
        await wait_until(lambda: batcher.waiting == 1, 10, "the request for b to wait")
        assert batcher.calls == 1  # b waits for the thread, not in the pool's queue
        refused = await client.post("/models/a/predict", json=one)
        assert refused.status_code == 503
        assert refused.headers["retry-after"]
        assert (await waiting).status_code == 504
        assert batcher.waiting == 0 and batcher.busy == 1 and batcher.calls == 1
        plugin_held.RELEASE.set()
        await wait_until(lambda: batcher.busy == 0, 30, "the held call to return")
        plugin_held.HOLD.clear()
        for name in ("a", "b"):
            answered = await client.post(f"/models/{name}/predict", json=one)
            assert answered.status_code == 200, answered.text
    finally:
        plugin_held.RELEASE.set()
        plugin_held.HOLD.clear()
    plugin_held.RELEASE.clear()


async def test_every_output_kind_answers_for_a_classifier(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    records = iris_records()
    await make_model(
        client,
        "svc",
        "sklearn.linear_model.LogisticRegression",
        target="species",
        settings={"max_iter": 1000},
    )
    await submit(client, "svc", "train", {"data": records})
    await make_model(
        client,
        "pca",
        "sklearn.decomposition.PCA",
        settings={"n_components": 2},
        features=IRIS_FEATURES,
    )
    await submit(
        client, "pca", "train", {"data": [{k: r[k] for k in IRIS_FEATURES} for r in records]}
    )
    await run_worker()
    row = {"columns": IRIS_FEATURES, "rows": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}

    async def output(name: str, kind: str | None) -> list[Any]:
        body = {**row, **({"output": kind} if kind else {})}
        response = await client.post(f"/models/{name}/predict", json=body)
        assert response.status_code == 200, response.text
        predictions: list[Any] = json_of(response)["predictions"]
        return predictions

    assert await output("svc", None) == ["setosa", "virginica"]
    proba = await output("svc", "predict_proba")
    assert sum(proba[0].values()) == pytest.approx(1.0)
    decision = await output("svc", "decision_function")
    assert len(decision[0]) == 3
    transformed = await output("pca", None)  # a transformer's default output is transform
    assert len(transformed) == 2 and len(transformed[0]) == 2
    assert await output("pca", "transform") == transformed
    wrong = await client.post("/models/pca/predict", json={**row, "output": "predict_proba"})
    assert wrong.status_code == 422 and json_of(wrong)["errors"][0]["loc"] == "$.output"


async def test_non_finite_outputs_are_null(client: httpx2.AsyncClient, run_worker: Worker) -> None:
    await train_line(client, run_worker, "lin", 1e300)
    body = await predict_x(client, "lin", 1e10)
    assert body["predictions"] == [None]


async def test_missing_columns_and_both_forms(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await train_line(client, run_worker, "lin", 1.0)
    missing = await client.post("/models/lin/predict", json={"data": [{"nope": 1.0}]})
    assert missing.status_code == 422 and "x" in missing.text
    both = await client.post(
        "/models/lin/predict", json={"data": [{"x": 1.0}], "columns": ["x"], "rows": [[1.0]]}
    )
    assert both.status_code == 422
    ragged = await client.post("/models/lin/predict", json={"columns": ["x"], "rows": [[1.0, 2.0]]})
    assert ragged.status_code == 422
    empty = await client.post("/models/lin/predict", json={"data": []})
    assert empty.status_code == 200 and json_of(empty)["predictions"] == []
    unknown_version = await client.post(
        "/models/lin/predict", json={"data": [{"x": 1.0}], "version": 7}
    )
    assert unknown_version.status_code == 404


async def test_a_version_larger_than_the_cache_is_a_409_without_reading_it(
    client_factory: ClientFactory, settings: Settings, raw: asyncpg.Connection
) -> None:
    tiny = msgspec.structs.replace(
        settings, models=msgspec.structs.replace(settings.models, cache_bytes=100)
    )
    client = await client_factory(tiny)
    await train_line(client, burst_worker(tiny), "lin", 2.0)
    # Tampered bytes would be a 500 if they were read (verified); sized only, they are not.
    await raw.execute("UPDATE artifacts SET data = data || '\\x00'::bytea")
    responses = await asyncio.gather(
        *(client.post("/models/lin/predict", json={"data": [{"x": 1.0}]}) for _ in range(20))
    )
    assert {r.status_code for r in responses} == {409}
    detail = json_of(responses[0])["detail"]
    assert "models.cache_bytes = 100" in detail and "version 1" in detail
    assert client.services.registry.models.loads == 0
    # Gone from the database, the artifact would now be a 404: the answer proves it is not read.
    await raw.execute("DELETE FROM artifacts")
    again = await client.post("/models/lin/predict", json={"data": [{"x": 1.0}]})
    assert again.status_code == 409, again.text
