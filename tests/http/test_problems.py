"""The error map finds a status through the exception's class hierarchy."""

from __future__ import annotations

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.domain.errors import Conflict, DomainError, NotFound
from service.http.edge import Edge
from service.http.metrics import ApiMetrics
from service.http.problems import exception_handlers

pytestmark = pytest.mark.anyio


class ArchivedModel(Conflict):
    """A subclass no one added to the map: it answers as the Conflict it is."""


class DeeplyGone(NotFound):
    pass


class GoneForGood(DeeplyGone):
    pass


class Refused(DomainError):
    """A new direct subclass of DomainError: a client error, never a 500."""


def raising(exc: Exception) -> Route:
    async def endpoint(request: Request) -> Response:
        raise exc

    return Route(f"/{type(exc).__name__}", endpoint)


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (ArchivedModel("model 'iris' is archived"), 409, "conflict"),
        (GoneForGood("it is gone"), 404, "not-found"),
        (Refused("no"), 400, "bad-request"),
    ],
)
async def test_a_new_domain_error_subclass_answers_with_its_nearest_mapped_status(
    error: DomainError, status: int, slug: str
) -> None:
    app = Starlette(
        routes=[raising(error)],
        middleware=[Middleware(Edge, metrics=ApiMetrics())],
        exception_handlers=exception_handlers(),
    )
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get(f"/{type(error).__name__}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"/problems/{slug}"
    assert response.json()["detail"] == error.detail
