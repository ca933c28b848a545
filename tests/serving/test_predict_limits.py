"""Rows per online prediction: more than `limits.max_predict_rows` is a 413 problem naming the
field, decided before any work (the model is not even looked up, so a missing one is still a
413), in either form of the request."""

from __future__ import annotations

import msgspec
import pytest

from service.settings import Settings
from tests.factories import AppClient, ClientFactory, json_of

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(client_factory: ClientFactory, settings: Settings) -> AppClient:
    limits = msgspec.structs.replace(settings.limits, max_predict_rows=10)
    return await client_factory(msgspec.structs.replace(settings, limits=limits))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"data": [{"x": i} for i in range(11)]}, "$.data"),
        ({"columns": ["x"], "rows": [[i] for i in range(11)]}, "$.rows"),
    ],
)
async def test_too_many_rows_is_a_413_naming_the_field_before_any_work(
    client: AppClient, body: dict[str, object], field: str
) -> None:
    response = await client.post("/models/nowhere/predict", json=body)
    assert response.status_code == 413, response.text
    problem = json_of(response)
    assert problem["type"] == "/problems/payload-too-large"
    assert problem["errors"] == [{"loc": field, "msg": "has 11 rows, more than the 10 allowed"}]
    sample = client.services.metrics.registry.get_sample_value(
        "limit_refusals_total", {"limit": "predict_rows"}
    )
    assert sample == 1.0


async def test_the_limit_itself_is_allowed(client: AppClient) -> None:
    response = await client.post("/models/nowhere/predict", json={"data": [{"x": 1}] * 10})
    assert response.status_code == 404, response.text
