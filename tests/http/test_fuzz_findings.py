"""Regression cases found by fuzzing the running service (schemathesis and hand-made probes).

Each test is a request that once answered 500 (or a redirect, or a silent guess) instead of a
4xx problem naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx2
import pytest

from tests.factories import LOGREG, json_of, make_model, submit

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"


def assert_problem(response: httpx2.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = json_of(response)
    return body


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/models", '{"name": "m", "model_type": "LOGREG", "settings": {"C": NESTED}}'),
        ("/models/m/train", '{"data": [], "parameters": {"x": NESTED}}'),
        ("/models/m/update", '{"data": [], "parameters": {"x": {"y": NESTED}}}'),
    ],
)
async def test_deeply_nested_json_is_a_400(
    client: httpx2.AsyncClient, path: str, template: str
) -> None:
    nested = "[" * 100_000 + "]" * 100_000
    response = await client.post(
        path,
        content=template.replace("LOGREG", LOGREG).replace("NESTED", nested),
        headers={"Content-Type": "application/json"},
    )
    body = assert_problem(response, 400)
    assert "nested" in str(body["detail"])


@pytest.mark.parametrize("version", [2**31, 2**63, 2**64 - 1])
async def test_version_beyond_int32_in_a_body_is_a_422(
    client: httpx2.AsyncClient, version: int
) -> None:
    created = await client.post("/models", json={"name": "m", "model_type": LOGREG})
    assert created.status_code == 201, created.text
    predict = await client.post("/models/m/predict", json={"data": [{"a": 1}], "version": version})
    assert assert_problem(predict, 422)["errors"] == [
        {"loc": "$.version", "msg": "Expected `int` <= 2147483647"}
    ]
    batch = await client.post(
        "/models/m/batch-predictions",
        json={"dataset": {"name": "d"}, "output_dataset": "out", "version": version},
    )
    assert assert_problem(batch, 422)["errors"] == [
        {"loc": "$.version", "msg": "Expected `int` <= 2147483647"}
    ]


async def test_csv_field_larger_than_pythons_csv_limit_is_stored(
    client: httpx2.AsyncClient,
) -> None:
    big = "x" * 300_000  # Python's csv module refuses fields over 128 KiB by default
    response = await client.post(
        "/datasets?name=big",
        content=f"a,b\n{big},1\n".encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 201, response.text
    appended = await client.post(
        "/datasets/big/rows",
        content=f"a,b\n{big},2\n".encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert appended.status_code == 200, appended.text
    rows = json_of(await client.get("/datasets/big/rows?order_by=b"))
    assert [(r["a"] == big, r["b"]) for r in rows["items"]] == [(True, 1), (True, 2)]


async def test_repeated_idempotency_key_header_is_a_400(client: httpx2.AsyncClient) -> None:
    created = await client.post("/models", json={"name": "m", "model_type": LOGREG})
    assert created.status_code == 201, created.text
    response = await client.post(
        "/models/m/train",
        json={"data": [{"a": 1, "y": "p"}], "target": "y"},
        headers=[("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
    )
    body = assert_problem(response, 400)
    assert body["errors"] == [{"loc": "Idempotency-Key", "msg": "given more than once"}]
    assert json_of(await client.get("/jobs"))["total"] == 0


@pytest.mark.parametrize(
    "path", ["/models/%2F", "/models/%2F%2F", "/jobs/%2F", "/datasets/%2F", "/models/"]
)
async def test_a_slash_name_is_a_404_not_a_redirect_to_the_collection(
    client: httpx2.AsyncClient, path: str
) -> None:
    response = await client.get(path, follow_redirects=False)
    assert_problem(response, 404)


async def test_training_integers_beyond_64_bits_are_floats(
    client: httpx2.AsyncClient, run_worker: Callable[[], Awaitable[None]]
) -> None:
    created = await client.post("/models", json={"name": "m", "model_type": LOGREG, "target": "y"})
    assert created.status_code == 201, created.text
    data = [
        {"a": -(2**64) + 1, "y": "p"},
        {"a": 2**70, "y": "q"},
        {"a": 1, "y": "p"},
        {"a": 2, "y": "q"},
    ]
    response = await client.post("/models/m/train", json={"data": data})
    assert response.status_code == 202, response.text
    await run_worker()
    job = json_of(await client.get(f"/jobs/{json_of(response)['id']}"))
    assert job["status"] == "succeeded", job


async def test_training_integer_beyond_a_float_is_a_422(client: httpx2.AsyncClient) -> None:
    created = await client.post("/models", json={"name": "m", "model_type": LOGREG, "target": "y"})
    assert created.status_code == 201, created.text
    data = [{"a": 1, "y": "p"}, {"a": -(10**400), "y": "q"}]
    response = await client.post("/models/m/train", json={"data": data})
    body = assert_problem(response, 422)
    assert body["errors"] == [{"loc": "$.data[1].a", "msg": "number out of range"}]
    assert json_of(await client.get("/jobs"))["total"] == 0


async def test_dataset_integer_beyond_a_float_is_a_422(client: httpx2.AsyncClient) -> None:
    huge = "1" + "0" * 400
    response = await client.post(
        "/datasets",
        content=f'{{"name": "big", "data": [{{"a": 1.5}}, {{"a": -{huge}}}]}}',
        headers={"Content-Type": "application/json"},
    )
    body = assert_problem(response, 422)
    assert [e["loc"] for e in body["errors"]] == ["$.data[1].a"]  # type: ignore[attr-defined]
    assert json_of(await client.get("/datasets"))["total"] == 0
    created = await client.post("/datasets", json={"name": "d", "data": [{"a": 1.5}]})
    assert created.status_code == 201, created.text
    appended = await client.post(
        "/datasets/d/rows",
        content=f'{{"data": [{{"a": {huge}}}]}}',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(appended, 422)
    assert json_of(await client.get("/datasets/d"))["rows"] == 1


async def test_predict_with_an_integer_beyond_a_float_is_422(
    client: httpx2.AsyncClient, run_worker: Callable[[], Awaitable[None]]
) -> None:
    await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
    await submit(client, "lin", "train", {"data": [{"x": 1.0, "y": 1.0}, {"x": 2.0, "y": 2.0}]})
    await run_worker()
    huge = "1" + "0" * 400
    for body in (
        f'{{"data": [{{"x": {huge}}}]}}',
        f'{{"columns": ["x"], "rows": [[{huge}]]}}',
    ):
        response = await client.post(
            "/models/lin/predict",
            content=body.encode(),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422, response.text
