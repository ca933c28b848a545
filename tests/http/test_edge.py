"""The edge layer on its own: generated request ids are version-4 UUIDs, and the count of
requests not yet answered (what lets a short prediction run on the event loop) holds each
request until its response starts, and no longer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from service.http.edge import Edge
from service.http.metrics import ApiMetrics
from service.serving.batching import in_flight
from tests.factories import wait_until

pytestmark = pytest.mark.anyio


def counted() -> int:
    served = in_flight.get()
    assert served is not None, "the edge layer sets the count for every request"
    return served.count


def app_with(seen: list[int], release: asyncio.Event) -> Starlette:
    async def held(request: Request) -> Response:
        seen.append(counted())
        await release.wait()
        return Response(b"done")

    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"
            seen.append(counted())  # the response has started

        return StreamingResponse(chunks())

    return Starlette(
        routes=[Route("/held", held), Route("/stream", stream)],
        middleware=[Middleware(Edge, metrics=ApiMetrics())],
    )


async def test_requests_count_until_their_response_starts() -> None:
    seen: list[int] = []
    release = asyncio.Event()
    transport = httpx2.ASGITransport(app=app_with(seen, release))
    async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
        first = asyncio.ensure_future(client.get("/held"))
        await wait_until(lambda: len(seen) == 1, 10, "the first request to arrive")
        second = asyncio.ensure_future(client.get("/held"))
        await wait_until(lambda: len(seen) == 2, 10, "the second request to arrive")
        release.set()
        assert [(await first).status_code, (await second).status_code] == [200, 200]
        assert seen == [1, 2]
        assert (await client.get("/stream")).text == "first"
        assert seen[-1] == 0
        seen.clear()
        release.clear()
        alone = asyncio.ensure_future(client.get("/held"))
        await wait_until(lambda: len(seen) == 1, 10, "a later request to arrive")
        release.set()
        assert (await alone).status_code == 200 and seen == [1]  # nothing stayed counted


async def test_a_generated_request_id_is_a_version_4_uuid() -> None:
    transport = httpx2.ASGITransport(app=app_with([], asyncio.Event()))
    async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
        ids = [(await client.get("/stream")).headers["x-request-id"] for _ in range(20)]
    assert len(set(ids)) == 20
    for rid in ids:
        parsed = uuid.UUID(hex=rid)
        assert parsed.hex == rid and parsed.version == 4 and parsed.variant == uuid.RFC_4122


async def test_invented_methods_share_one_series() -> None:
    """A client can send any token as a method; each would otherwise be a series of its own."""
    metrics = ApiMetrics()
    app = Starlette(
        routes=[Route("/stream", lambda request: Response(b"x"))],
        middleware=[Middleware(Edge, metrics=metrics)],
    )
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
        for n in range(30):
            assert (await client.request(f"M{n}", "/stream")).status_code == 405
        assert (await client.get("/stream")).status_code == 200
    methods = {
        sample.labels["method"]
        for family in metrics.registry.collect()
        if family.name == "http_requests"
        for sample in family.samples
    }
    assert methods == {"OTHER", "GET"}
