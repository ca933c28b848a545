"""SIGTERM drains: a request in flight when the api is told to stop still gets its answer.

The request announces `Expect: 100-continue`, so the server's `100 Continue` tells the test that
the request is in flight; the listening socket refusing connections tells it that the server has
begun to stop. No step waits on a timer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import msgspec
import pytest

from service.settings import Settings
from tests.factories import HMAC_KEY, ROOT, wait_until
from tests.processes import accepts
from tests.tcpproxy import free_port

pytestmark = pytest.mark.anyio


async def test_in_flight_request_finishes_after_sigterm(settings: Settings) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE__")}
    env.update(
        {
            "SERVICE__HTTP__BIND": f"127.0.0.1:{port}",
            "SERVICE__DATABASE__URL": settings.database.url,
            "SERVICE__REDIS__URL": settings.redis.url,
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
    finally:
        if api.returncode is None:
            api.kill()
            await api.wait()
