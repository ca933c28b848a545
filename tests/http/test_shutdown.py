"""SIGTERM drains: a request in flight when the api is told to stop still gets its answer.

The request announces `Expect: 100-continue`, so the server's `100 Continue` tells the test that
the request is in flight; the listening socket refusing connections tells it that the server has
begun to stop. No step waits on a timer."""

from __future__ import annotations

import asyncio
import signal

import msgspec
import pytest

from service.settings import Settings
from tests.factories import wait_until
from tests.processes import accepts, api_process

pytestmark = pytest.mark.anyio


async def test_in_flight_request_finishes_after_sigterm(settings: Settings) -> None:
    async with api_process(settings) as (port, api):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = msgspec.json.encode({"name": "drained", "model_type": "sklearn.linear_model.Ridge"})
        head = (
            f"POST /models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
        ).encode()
        writer.write(head)
        await writer.drain()
        # Sent once the app waits for the body: from here on the request is in flight.
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        api.send_signal(signal.SIGTERM)

        async def stopped_listening() -> bool:
            return not await accepts(port)

        await wait_until(stopped_listening, 15, "the api to stop accepting connections")
        writer.write(body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 15)
        assert status_line.startswith(b"HTTP/1.1 201"), status_line
        writer.close()
        assert await asyncio.wait_for(api.wait(), 20) == 0
