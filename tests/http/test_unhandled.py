"""A bug becomes a 500 problem with the request id and without internals."""

from __future__ import annotations

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.http.edge import Edge
from service.http.metrics import ApiMetrics
from service.http.problems import exception_handlers

pytestmark = pytest.mark.anyio


async def broken(request: Request) -> Response:
    raise RuntimeError("secret internal detail: password=hunter2")


async def test_unhandled_exception_is_a_500_problem_without_internals() -> None:
    app = Starlette(
        routes=[Route("/broken", broken)],
        middleware=[Middleware(Edge, metrics=ApiMetrics())],
        exception_handlers=exception_handlers(),
    )
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/broken", headers={"X-Request-ID": "bug-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "bug-1"
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    assert response.json()["type"] == "/problems/internal-error"
