"""A real Open Inference Protocol client (Triton's `tritonclient.http`) against a real api
process: health, metadata, readiness, and inference with binary and JSON tensors, by the
current version and by a pinned one. Its answers must equal our own JSON route's."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from service.settings import Settings
from tests.factories import HMAC_KEY, ROOT, AppClient, Worker, json_of, wait_until
from tests.iris import IRIS_FEATURES
from tests.oip import FLOWERS, predicted, train_iris
from tests.processes import accepts
from tests.tcpproxy import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
async def api_url(settings: Settings) -> AsyncIterator[str]:
    """`host:port` of a real api process on the test's database."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE__")}
    env.update(
        {
            "SERVICE__HTTP__BIND": f"127.0.0.1:{port}",
            "SERVICE__DATABASE__URL": settings.database.url,
            "SERVICE__REDIS__URL": settings.redis.url,
            "SERVICE__REDIS__QUEUE_NAME": settings.redis.queue_name,
            "SERVICE__AUTH__MODE": "disabled",
            "SERVICE__ARTIFACTS__HMAC_KEY": HMAC_KEY,
        }
    )
    api = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "api",
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        async def listening() -> bool:
            assert api.returncode is None, f"the api exited with {api.returncode}"
            return await accepts(port)

        await wait_until(listening, 30, "the api to listen")
        yield f"127.0.0.1:{port}"
    finally:
        if api.returncode is None:
            api.terminate()
            await api.wait()


def labels(result: Any, name: str = "predict") -> list[str]:
    return [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy(name).tolist()]


async def test_triton_client_health_metadata_and_binary_inference(
    client: AppClient, run_worker: Worker, api_url: str
) -> None:
    await train_iris(client, run_worker)
    expected = await predicted(client, "iris")
    oip = triton.InferenceServerClient(api_url)
    try:
        assert oip.is_server_live() and oip.is_server_ready()
        assert oip.is_model_ready("iris") and not oip.is_model_ready("nope")
        meta = oip.get_model_metadata("iris")
        assert meta["versions"] == ["1"]
        assert [i["name"] for i in meta["inputs"]] == IRIS_FEATURES

        # The client's defaults: binary input data, and every output in binary.
        tensor = triton.InferInput("flowers", [3, 4], "FP64")
        tensor.set_data_from_numpy(np.array(FLOWERS))
        result = oip.infer("iris", [tensor])
        assert labels(result) == expected
        assert result.get_response()["model_version"] == "1"
    finally:
        oip.close()


async def test_triton_client_json_tensors_outputs_and_versions(
    client: AppClient, run_worker: Worker, api_url: str
) -> None:
    await train_iris(client, run_worker)
    await train_iris(client, run_worker)
    proba = await predicted(client, "iris", "predict_proba")
    oip = triton.InferenceServerClient(api_url)
    try:
        inputs = []
        for j, name in enumerate(IRIS_FEATURES):  # one tensor per feature, as JSON
            column = triton.InferInput(name, [3], "FP32")
            column.set_data_from_numpy(np.array([r[j] for r in FLOWERS], np.float32), False)
            inputs.append(column)
        outputs = [
            triton.InferRequestedOutput("predict_proba", binary_data=False),
            triton.InferRequestedOutput("predict", binary_data=True),
        ]
        result = oip.infer("iris", inputs, model_version="1", outputs=outputs)
        assert result.get_response()["model_version"] == "1"
        values = result.as_numpy("predict_proba")
        assert values.shape == (3, 3)
        assert np.allclose(values, [list(p.values()) for p in proba], atol=1e-5)
        assert len(labels(result)) == 3

        with pytest.raises(InferenceServerException) as missing:
            oip.infer("nope", inputs)
        assert "nope" in str(missing.value) and "does not exist" in str(missing.value)
        bad = triton.InferInput("flowers", [3, 3], "FP64")
        bad.set_data_from_numpy(np.zeros((3, 3)))
        with pytest.raises(InferenceServerException) as refused:
            oip.infer("iris", [bad])
        assert "the model takes 4 features" in str(refused.value)
    finally:
        oip.close()


async def test_our_json_answers_match_the_protocols(client: AppClient, run_worker: Worker) -> None:
    """The same rows through both routes give the same labels (a control for the above)."""
    await train_iris(client, run_worker)
    flat = [v for row in FLOWERS for v in row]
    body = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": flat}]}
    answer = json_of(await client.post("/v2/models/iris/infer", json=body))
    assert answer["outputs"][0]["data"] == await predicted(client, "iris")
