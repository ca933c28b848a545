"""A client generated from `/openapi.json` by a real generator drives create → train → predict.

Generated clients name their methods after `operationId`s and their models after schema
names; a document that a generator refuses or mangles fails here. The client is written to a
temporary directory, never committed.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from service.http.app import create_app
from service.settings import Settings

pytestmark = pytest.mark.anyio

PACKAGE = "models_service_client"
# The generator has no `text/csv` support; CSV bodies become raw bytes in the client.
CONFIG = "content_type_overrides:\n  text/csv: application/octet-stream\npost_hooks: []\n"


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[Callable[[bytes], ModuleType]]:
    """Generates the client package from a document and imports it; unloads it afterwards."""

    def generate(document: bytes) -> ModuleType:
        (tmp_path / "openapi.json").write_bytes(document)
        (tmp_path / "config.yaml").write_text(CONFIG)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "openapi_python_client",
                "generate",
                "--path",
                str(tmp_path / "openapi.json"),
                "--output-path",
                str(tmp_path / PACKAGE),
                "--meta",
                "none",
                "--config",
                str(tmp_path / "config.yaml"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        assert "Warning" not in output and "Unable" not in output, output
        sys.path.insert(0, str(tmp_path))
        return importlib.import_module(PACKAGE)

    yield generate
    sys.path[:] = [p for p in sys.path if p != str(tmp_path)]
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


async def test_a_generated_client_creates_trains_and_predicts(
    settings: Settings,
    generated: Callable[[bytes], ModuleType],
    run_worker: Callable[[], Awaitable[None]],
) -> None:
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            document = (await http.get("/openapi.json")).content
            package = generated(document)
            client = package.Client(base_url="http://testserver").set_async_httpx_client(http)
            models = _module("models")

            created = await _module("api.models.create_model").asyncio_detailed(
                client=client,
                body=models.ModelCreate(
                    name="iris",
                    model_type="sklearn.linear_model.LogisticRegression",
                    features=["petal_length", "petal_width"],
                    target="species",
                ),
            )
            assert created.status_code == 201, created.content
            assert created.parsed.name == "iris" and created.parsed.current_version is None

            rows = [
                {"petal_length": 1.4, "petal_width": 0.2, "species": "setosa"},
                {"petal_length": 1.3, "petal_width": 0.3, "species": "setosa"},
                {"petal_length": 4.7, "petal_width": 1.4, "species": "versicolor"},
                {"petal_length": 4.5, "petal_width": 1.5, "species": "versicolor"},
            ]
            job = await _module("api.training.train_model").asyncio(
                name="iris", client=client, body=models.TrainRequest.from_dict({"data": rows})
            )
            assert isinstance(job, models.JobOut), job
            assert job.status == models.JobOutStatus.QUEUED

            await run_worker()

            done = await _module("api.jobs.get_job").asyncio(job_id=job.id, client=client)
            assert done.status == models.JobOutStatus.SUCCEEDED, done
            answer = await _module("api.predictions.predict").asyncio(
                name="iris",
                client=client,
                body=models.PredictRequest.from_dict(
                    {"data": [{"petal_length": 1.5, "petal_width": 0.2}]}
                ),
            )
            assert isinstance(answer, models.PredictResponse), answer
            assert (answer.model, answer.version, answer.predictions) == ("iris", 1, ["setosa"])

            missing = await _module("api.models.get_model").asyncio(name="nope", client=client)
            assert isinstance(missing, models.Problem) and missing.status == 404
