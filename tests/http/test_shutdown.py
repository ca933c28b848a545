"""SIGTERM drains: a request in flight when the api is told to stop still gets its answer, and a
client that keeps a connection alive is told to close it before the server closes it.

The request announces `Expect: 100-continue`, so the server's `100 Continue` tells the test that
the request is in flight; the listening socket refusing connections tells it that the server has
begun to stop. No step waits on a timer: the steady client's pauses are its own rhythm, which
leaves its connection idle when the server is told to stop, not a wait for the server."""

from __future__ import annotations

import asyncio
import signal

import msgspec
import pytest

from service.settings import Settings
from tests.factories import wait_until
from tests.processes import accepts, api_process

pytestmark = pytest.mark.anyio

THINK_SECONDS = 0.1  # a client's pause between requests; well below the api's quiet period


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


async def get_livez(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """GET /livez on a kept-alive connection; the response's head, its body read."""
    writer.write(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return head.lower()


async def test_a_kept_alive_connection_is_told_to_close_before_it_is(settings: Settings) -> None:
    """Hypercorn closes idle kept-alive connections as it stops: a request sent on one a moment
    before (through a proxy, say) would get no answer at all. Told to stop, the api first
    answers each request with `Connection: close`, and closes a connection only after that."""
    async with api_process(settings) as (port, api):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = await get_livez(reader, writer)
        assert head.startswith(b"http/1.1 200") and b"connection: close" not in head, head
        api.send_signal(signal.SIGTERM)
        # A steady client: request after request on the one connection, each answered, until an
        # answer says that the connection closes. It pauses between them, so that the
        # connection is idle most of the time, as it is when the server is told to stop.
        while True:
            await asyncio.sleep(THINK_SECONDS)
            head = await get_livez(reader, writer)
            assert head.startswith(b"http/1.1 200"), head
            if b"connection: close" in head:
                break
        assert await asyncio.wait_for(reader.read(), 15) == b""  # and then it is closed
        writer.close()
        assert await asyncio.wait_for(api.wait(), 30) == 0
