"""The Open Inference Protocol over HTTP: metadata, readiness, inference in every input form,
binary data both ways, versions and splits, and errors in the protocol's shape."""

from __future__ import annotations

import struct
from typing import Any

import msgspec
import numpy as np
import pytest

from tests.factories import AppClient, Worker, json_of, make_model
from tests.iris import IRIS_FEATURES
from tests.oip import FLOWERS, matrix_request, predicted, train_iris

pytestmark = pytest.mark.anyio


async def test_health_needs_no_token_and_says_so(client: AppClient) -> None:
    live = await client.get("/v2/health/live")
    ready = await client.get("/v2/health/ready")
    assert (live.status_code, json_of(live)) == (200, {"live": True})
    assert (ready.status_code, json_of(ready)) == (200, {"ready": True})


async def test_metadata_describes_the_current_version(
    client: AppClient, run_worker: Worker
) -> None:
    await make_model(client, "iris", "sklearn.linear_model.LogisticRegression", target="species")
    empty = json_of(await client.get("/v2/models/iris"))
    assert empty == {
        "name": "iris",
        "versions": [],
        "platform": "scikit-learn",
        "inputs": [],
        "outputs": [],
    }
    await train_iris(client, run_worker)
    await train_iris(client, run_worker)
    meta = json_of(await client.get("/v2/models/iris"))
    assert meta["versions"] == ["2", "1"]
    assert meta["inputs"] == [{"name": f, "datatype": "FP64", "shape": [-1]} for f in IRIS_FEATURES]
    outputs = {o["name"]: o for o in meta["outputs"]}
    assert outputs["predict"] == {"name": "predict", "datatype": "BYTES", "shape": [-1]}
    assert outputs["predict_proba"]["shape"] == [-1, 3]
    missing = await client.get("/v2/models/nope")
    assert missing.status_code == 404
    assert set(json_of(missing)) == {"error"}


async def test_model_ready_once_a_version_loads(client: AppClient, run_worker: Worker) -> None:
    await make_model(client, "iris", "sklearn.linear_model.LogisticRegression", target="species")
    before = await client.get("/v2/models/iris/ready")
    assert (before.status_code, json_of(before)) == (400, {"name": "iris", "ready": False})
    await train_iris(client, run_worker)
    after = await client.get("/v2/models/iris/ready")
    assert (after.status_code, json_of(after)) == (200, {"name": "iris", "ready": True})
    assert (await client.get("/v2/models/nope/ready")).status_code == 404


async def test_a_matrix_tensor_answers_as_the_json_route(
    client: AppClient, run_worker: Worker
) -> None:
    await train_iris(client, run_worker)
    response = await client.post("/v2/models/iris/infer", json=matrix_request(FLOWERS, id="r1"))
    assert response.status_code == 200, response.text
    body = json_of(response)
    assert body["model_name"] == "iris" and body["model_version"] == "1" and body["id"] == "r1"
    [tensor] = body["outputs"]
    assert tensor == {
        "name": "predict",
        "shape": [3],
        "datatype": "BYTES",
        "data": await predicted(client, "iris"),
    }


async def test_one_tensor_per_feature_in_any_order_and_nested_data(
    client: AppClient, run_worker: Worker
) -> None:
    await train_iris(client, run_worker)
    columns = list(zip(*FLOWERS, strict=True))
    inputs = [
        {"name": name, "shape": [3, 1], "datatype": "FP32", "data": [[v] for v in columns[j]]}
        for j, name in reversed(list(enumerate(IRIS_FEATURES)))
    ]
    body = {"inputs": inputs, "outputs": [{"name": "predict_proba"}, {"name": "predict"}]}
    response = await client.post("/v2/models/iris/infer", json=body)
    assert response.status_code == 200, response.text
    proba, labels = json_of(response)["outputs"]
    assert (proba["name"], proba["datatype"], proba["shape"]) == ("predict_proba", "FP64", [3, 3])
    expected = np.array(
        [list(p.values()) for p in await predicted(client, "iris", "predict_proba")]
    )
    # FP32 inputs: the same rows to float32 precision.
    assert np.allclose(np.array(proba["data"]).reshape(3, 3), expected, atol=1e-5)
    assert labels["data"] == await predicted(client, "iris")


async def test_binary_data_both_ways(client: AppClient, run_worker: Worker) -> None:
    await train_iris(client, run_worker)
    raw = np.array(FLOWERS, dtype="<f8").tobytes()
    header = msgspec.json.encode(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [3, 4],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "predict_proba", "parameters": {"binary_data": True}}],
            "parameters": {"binary_data_output": True},
        }
    )
    response = await client.post(
        "/v2/models/iris/infer",
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    meta = msgspec.json.decode(response.content[:length])
    [tensor] = meta["outputs"]
    size = tensor["parameters"]["binary_data_size"]
    assert "data" not in tensor and size == 3 * 3 * 8
    values = np.frombuffer(response.content[length : length + size], "<f8").reshape(3, 3)
    expected = [list(p.values()) for p in await predicted(client, "iris", "predict_proba")]
    assert np.allclose(values, expected)


async def test_binary_labels_are_length_prefixed(client: AppClient, run_worker: Worker) -> None:
    await train_iris(client, run_worker)
    body = matrix_request(FLOWERS, parameters={"binary_data_output": True})
    response = await client.post("/v2/models/iris/infer", json=body)
    length = int(response.headers["inference-header-content-length"])
    data = response.content[length:]
    labels, at = [], 0
    while at < len(data):
        (n,) = struct.unpack_from("<I", data, at)
        labels.append(data[at + 4 : at + 4 + n].decode())
        at += 4 + n
    assert labels == await predicted(client, "iris")


async def test_versions_pin_and_the_split_applies(client: AppClient, run_worker: Worker) -> None:
    await train_iris(client, run_worker)
    await train_iris(client, run_worker)
    pinned = await client.post("/v2/models/iris/versions/1/infer", json=matrix_request(FLOWERS))
    assert json_of(pinned)["model_version"] == "1"
    split = {"split": [{"version": 1, "weight": 100}]}
    assert (await client.put("/models/iris/traffic", json=split)).status_code == 200
    routed = await client.post("/v2/models/iris/infer", json=matrix_request(FLOWERS))
    assert json_of(routed)["model_version"] == "1"  # the split, not the current version 2
    for missing in ("3", "0", "x"):
        url = f"/v2/models/iris/versions/{missing}/infer"
        gone = await client.post(url, json=matrix_request(FLOWERS))
        assert gone.status_code == 404, (missing, gone.text)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"inputs": []}, "$.inputs"),
        (matrix_request([[1.0, 2.0, 3.0]]), "$.inputs[0].data"),  # 3 values, shape [1, 4]
        (
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
            "$.inputs[0].shape",
        ),
        (
            {
                "inputs": [
                    {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ["a", 1, 2, 3]}
                ]
            },
            "$.inputs[0].data[0]",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP99", "data": [1, 2, 3, 4]}]},
            "$.inputs[0].datatype",
        ),
        (
            {
                "inputs": [
                    {"name": "x", "shape": [1, 1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}
                ]
            },
            "$.inputs[0].shape",
        ),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64"}]}, "$.inputs[0].data"),
        (
            {"inputs": [{"name": "petal_width", "shape": [1], "datatype": "FP64", "data": [1]}]},
            "no tensor for feature 'sepal_length'",
        ),
        (
            {**matrix_request([[1.0, 2.0, 3.0, 4.0]]), "outputs": [{"name": "explain"}]},
            "$.outputs[0].name",
        ),
        (
            {**matrix_request([[1.0, 2.0, 3.0, 4.0]]), "outputs": [{"name": "transform"}]},
            "transform",
        ),
        (
            {
                "inputs": [
                    {"name": "x", "shape": [1, 4], "datatype": "INT32", "data": [1, 2, 3, 2**40]}
                ]
            },
            "INT32",
        ),
    ],
)
async def test_bad_requests_are_400_naming_the_place(
    client: AppClient, run_worker: Worker, body: dict[str, Any], fragment: str
) -> None:
    await train_iris(client, run_worker)
    response = await client.post("/v2/models/iris/infer", json=body)
    assert response.status_code == 400, response.text
    error = json_of(response)
    assert set(error) == {"error"} and fragment in error["error"], error


async def test_binary_framing_errors_are_400(client: AppClient, run_worker: Worker) -> None:
    await train_iris(client, run_worker)
    header = msgspec.json.encode(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 4],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 32},
                }
            ]
        }
    )
    cases = [
        (header + b"\0" * 31, str(len(header))),  # too few bytes
        (header + b"\0" * 40, str(len(header))),  # bytes that belong to no input
        (header, str(len(header) + 5)),  # the header longer than the body
        (header + b"\0" * 32, "-1"),
    ]
    for content, declared in cases:
        response = await client.post(
            "/v2/models/iris/infer",
            content=content,
            headers={"Inference-Header-Content-Length": declared},
        )
        assert response.status_code == 400, (declared, response.text)
        assert set(json_of(response)) == {"error"}


async def test_the_row_limit_applies_before_any_data_is_read(
    client_factory: Any, settings: Any, run_worker: Worker
) -> None:
    limited = msgspec.structs.replace(
        settings, limits=msgspec.structs.replace(settings.limits, max_predict_rows=2)
    )
    client = await client_factory(limited)
    await train_iris(client, run_worker)
    response = await client.post("/v2/models/iris/infer", json=matrix_request(FLOWERS))
    assert response.status_code == 413
    assert "$.inputs[0].shape" in json_of(response)["error"]


async def test_other_content_types_are_refused(client: AppClient) -> None:
    response = await client.post(
        "/v2/models/iris/infer", content=b"a,b", headers={"content-type": "text/csv"}
    )
    assert response.status_code == 415 and set(json_of(response)) == {"error"}


async def test_unknown_v2_routes_answer_in_the_protocols_shape(client: AppClient) -> None:
    response = await client.get("/v2/repository/index")
    assert response.status_code == 404 and set(json_of(response)) == {"error"}


async def test_bodies_over_their_limits_are_413_before_they_are_read_whole(
    client_factory: Any, settings: Any
) -> None:
    """JSON tensors get `http.max_json_bytes`; with binary data the whole body gets
    `http.max_body_bytes` and its JSON part still the JSON limit."""
    http = msgspec.structs.replace(settings.http, max_json_bytes=2_000, max_body_bytes=20_000)
    client = await client_factory(msgspec.structs.replace(settings, http=http))
    rows = [[5.1, 3.5, 1.4, 0.2]] * 300  # about 5 kB of JSON
    json_body = await client.post("/v2/models/iris/infer", json=matrix_request(rows))
    assert json_body.status_code == 413, json_body.text
    assert "2000 bytes" in json_of(json_body)["error"]
    raw = np.zeros((1000, 4)).tobytes()  # 32 000 bytes of binary data
    header = msgspec.json.encode(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1000, 4],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )
    binary = await client.post(
        "/v2/models/iris/infer",
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert binary.status_code == 413 and "20000 bytes" in json_of(binary)["error"]
    padded = header + b" " * 2_000  # JSON part over its own limit, body within its own
    over = await client.post(
        "/v2/models/iris/infer",
        content=padded,
        headers={"Inference-Header-Content-Length": str(len(padded))},
    )
    assert over.status_code == 413 and "2000 bytes" in json_of(over)["error"]
