"""SIGTERM drains: a request in flight when the api is told to stop still gets its answer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import msgspec
import pytest

from service.settings import Settings
from tests.factories import HMAC_KEY, ROOT
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
        deadline = time.monotonic() + 30
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                assert time.monotonic() < deadline and api.returncode is None
                await asyncio.sleep(0.2)
        body = msgspec.json.encode({"name": "drained", "model_type": "sklearn.linear_model.Ridge"})
        head = (
            f"POST /models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        writer.write(head + body[:10])
        await writer.drain()
        await asyncio.sleep(0.3)
        api.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        writer.write(body[10:])
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 15)
        assert status_line.startswith(b"HTTP/1.1 201"), status_line
        writer.close()
        assert await asyncio.wait_for(api.wait(), 20) == 0
    finally:
        if api.returncode is None:
            api.kill()
            await api.wait()
