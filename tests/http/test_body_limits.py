"""Greedy and stalled bodies in-process: JSON, decoded into objects at once, has a limit far
below the streamed CSV one; a body that stops arriving is a 408."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest

from service.settings import Settings
from tests.factories import CSV, AppClient, ClientFactory, json_of

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}


async def limited(client_factory: ClientFactory, settings: Settings, **http: object) -> AppClient:
    return await client_factory(
        msgspec.structs.replace(settings, http=msgspec.structs.replace(settings.http, **http))
    )


def records_json(count: int) -> bytes:
    data = [{"id": n, "label": f"row {n}"} for n in range(count)]
    return msgspec.json.encode({"name": "records", "data": data})


def records_csv(count: int) -> bytes:
    return b"id,label\n" + b"".join(b"%d,row %d\n" % (n, n) for n in range(count))


async def test_json_over_its_limit_is_a_413_naming_it_while_the_same_data_as_csv_is_taken(
    client_factory: ClientFactory, settings: Settings
) -> None:
    client = await limited(client_factory, settings, max_json_bytes=50_000, max_body_bytes=10**6)
    body = records_json(5_000)  # ~120 kB: over the JSON limit, far under the body limit
    declared = await client.post("/datasets", content=body, headers=JSON)
    assert declared.status_code == 413
    detail = json_of(declared)["detail"]
    assert "http.max_json_bytes" in detail and "50000" in detail and "text/csv" in detail

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    assert (await client.post("/datasets", content=streamed(), headers=JSON)).status_code == 413
    as_csv = await client.post(
        "/datasets", params={"name": "records"}, content=records_csv(5_000), headers=CSV
    )
    assert as_csv.status_code == 201, as_csv.text
    small = await client.post("/models", json={"name": "m", "model_type": "nope"})
    assert small.status_code == 422  # under the limit, JSON is decoded as before


async def test_the_body_limit_still_applies_when_it_is_the_smaller(
    client_factory: ClientFactory, settings: Settings
) -> None:
    client = await limited(client_factory, settings, max_json_bytes=10**6, max_body_bytes=1000)
    response = await client.post("/models", content=b"x" * 5000, headers=JSON)
    assert response.status_code == 413
    assert "1000 bytes" in json_of(response)["detail"]
    assert "max_json_bytes" not in json_of(response)["detail"]


async def test_a_body_that_stops_arriving_is_a_408(
    client_factory: ClientFactory, settings: Settings
) -> None:
    client = await limited(client_factory, settings, read_timeout=0.2)
    never = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b"id,label\n1,a\n"
        await never.wait()  # the rest never comes
        yield b""

    async def stalls_json() -> AsyncIterator[bytes]:
        yield b'{"name": "m", '
        await never.wait()
        yield b""

    stalled = await client.post("/datasets", params={"name": "s"}, content=stalls(), headers=CSV)
    assert stalled.status_code == 408
    assert "http.read_timeout" in json_of(stalled)["detail"]
    assert (await client.get("/datasets/s")).status_code == 404
    assert (await client.post("/models", content=stalls_json(), headers=JSON)).status_code == 408
