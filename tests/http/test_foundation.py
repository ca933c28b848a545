"""The api's ground floor: liveness and readiness, problem+json for unknown routes and methods,
request ids, per-route metrics and the locally served docs."""

from __future__ import annotations

import httpx2
import pytest

from tests.factories import json_of

pytestmark = pytest.mark.anyio


async def test_livez_answers_200_with_a_request_id(client: httpx2.AsyncClient) -> None:
    response = await client.get("/livez")
    assert response.status_code == 200
    assert response.headers["x-request-id"]


async def test_readyz_when_everything_answers(client: httpx2.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert json_of(response) == {"ready": True, "checks": {"postgres": "ok", "redis": "ok"}}


async def test_unknown_route_is_a_problem(client: httpx2.AsyncClient) -> None:
    response = await client.get("/nowhere", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "abc-123"
    body = json_of(response)
    assert body["type"] == "/problems/not-found"
    assert body["status"] == 404
    assert body["instance"] == "/nowhere"
    assert body["request_id"] == "abc-123"


async def test_insane_request_id_is_replaced(client: httpx2.AsyncClient) -> None:
    response = await client.get("/livez", headers={"X-Request-ID": "x" * 500})
    assert response.headers["x-request-id"] != "x" * 500


async def test_wrong_method_lists_allowed_ones(client: httpx2.AsyncClient) -> None:
    response = await client.delete("/livez")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
    assert json_of(response)["type"] == "/problems/method-not-allowed"


async def test_metrics_label_routes_by_template(client: httpx2.AsyncClient) -> None:
    await client.get("/livez")
    await client.get("/no/such/thing")
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/livez",status="200"}' in text
    assert 'route="unmatched"' in text
    assert "/no/such/thing" not in text
    assert "process_cpu_seconds_total" in text
    assert "http_requests_in_flight" in text


async def test_docs_served_from_local_files(client: httpx2.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "/docs/static/swagger-ui-bundle.js" in page.text
    bundle = await client.get("/docs/static/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert len(bundle.content) > 100_000
