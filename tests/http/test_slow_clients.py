"""Slow and stalled clients against `python -m service api` (a real Hypercorn on a real socket):
a client that stops sending mid-upload gets a 408 after `http.read_timeout` and stores nothing;
one that trickles its headers is cut after `http.keep_alive_timeout`; a
client that stops reading an export is cut after `http.send_timeout`, which ends the export's
transaction. The timeouts are set small; the tests wait for the outcome with generous bounds
and never measure how long it took."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx2
import pytest

from service.domain.actors import Actor, acting_as
from service.domain.errors import Unavailable
from service.query import parse_query
from service.query.limits import INT64_MAX
from service.settings import Settings
from tests.factories import ROOT, AppClient, wait_until
from tests.processes import worker_env
from tests.tcpproxy import free_port

pytestmark = pytest.mark.anyio

STALL = 1.0  # read_timeout and send_timeout of the api under test, seconds
BOUND = 30.0  # how long a test waits for what STALL should bring about


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def api_log(tmp_path: Path) -> Path:
    return tmp_path / "api.log"


@pytest.fixture
def api(settings: Settings, api_log: Path) -> Iterator[int]:
    """The port of a running `python -m service api` on the test's database; its log lines
    go to `api_log`."""
    port = free_port()
    env = worker_env(settings, "api", "text")
    env.update(
        {
            "SERVICE__HTTP__BIND": f"127.0.0.1:{port}",
            "SERVICE__HTTP__READ_TIMEOUT": str(STALL),
            "SERVICE__HTTP__SEND_TIMEOUT": str(STALL),
            "SERVICE__HTTP__KEEP_ALIVE_TIMEOUT": str(STALL),
        }
    )
    log = api_log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "api"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while not _ready(port):
            assert process.poll() is None, "the api exited"
            assert time.monotonic() < deadline, "the api did not get ready"
            time.sleep(0.1)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


async def open_transactions(watcher: asyncpg.Connection) -> int:
    """Transactions open in the test's database, other than the watcher's own."""
    count: int = await watcher.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
    )
    return count


def read_until_closed(sock: socket.socket) -> tuple[bytes, bool]:
    """Everything the server sends until it closes the connection: (data, closed)."""
    sock.settimeout(BOUND)
    received = bytearray()
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return bytes(received), False
    except ConnectionResetError:
        pass
    return bytes(received), True


def csv_rows(count: int) -> bytes:
    return b"id,label\n" + b"".join(b"%d,label of row number %d\n" % (n, n) for n in range(count))


async def test_a_client_that_stalls_mid_upload_is_cut_and_nothing_is_stored(
    api: int, database_url: str
) -> None:
    body = csv_rows(3000)  # past the head the service samples before it spools the rest
    sock = socket.create_connection(("127.0.0.1", api))
    watcher = await asyncpg.connect(database_url)
    try:
        sock.sendall(
            b"POST /datasets?name=stalled HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: text/csv\r\nContent-Length: %d\r\n\r\n" % (len(body) * 2) + body
        )
        # The rest of the body never comes.
        data, closed = await asyncio.to_thread(read_until_closed, sock)
        assert closed, "the server kept a stalled upload open"
        assert data.startswith(b"HTTP/1.1 408"), data[:200]
        assert b"http.read_timeout" in data
        assert await open_transactions(watcher) == 0
        tables = await watcher.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'datasets'"
        )
        assert tables == 0
    finally:
        sock.close()
        await watcher.close()
    async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{api}") as client:
        assert (await client.get("/datasets/stalled")).status_code == 404
        # The api is fine for the next client, who may use the same name.
        sent = await client.post(
            "/datasets", params={"name": "stalled"}, content=csv_rows(10), headers=_CSV
        )
        assert sent.status_code == 201, sent.text


async def test_a_client_that_leaves_mid_upload_is_no_error_and_stores_nothing(
    api: int, api_log: Path, database_url: str
) -> None:
    body = csv_rows(3000)
    with socket.create_connection(("127.0.0.1", api)) as sock:
        sock.sendall(
            b"POST /datasets?name=gone HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: text/csv\r\nContent-Length: %d\r\n\r\n" % (len(body) * 2) + body
        )
    async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{api}") as client:

        def logged() -> bool:
            return "went away" in api_log.read_text()

        await wait_until(logged, BOUND, "the api to notice the client left")
        assert (await client.get("/datasets/gone")).status_code == 404
    text = await asyncio.to_thread(api_log.read_text)
    assert "unhandled error" not in text and "Traceback" not in text, text


async def test_a_client_that_trickles_its_headers_is_cut(api: int) -> None:
    sock = socket.create_connection(("127.0.0.1", api))
    try:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: te")  # and then nothing more
        data, closed = await asyncio.to_thread(read_until_closed, sock)
    finally:
        sock.close()
    assert closed
    assert b"200" not in data


_CSV = {"content-type": "text/csv"}


async def test_a_client_that_stops_reading_an_export_is_cut_and_its_snapshot_released(
    api: int, database_url: str
) -> None:
    rows = 300_000  # ~10 MB of CSV: more than the kernel's socket buffers hold
    async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{api}", timeout=120) as client:
        sent = await client.post(
            "/datasets", params={"name": "big"}, content=csv_rows(rows), headers=_CSV
        )
        assert sent.status_code == 201, sent.text
    watcher = await asyncpg.connect(database_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: no autotuning
    try:
        sock.connect(("127.0.0.1", api))
        sock.sendall(b"GET /datasets/big/rows HTTP/1.1\r\nHost: test\r\nAccept: text/csv\r\n\r\n")

        async def exporting() -> bool:
            return await open_transactions(watcher) > 0

        await wait_until(exporting, BOUND, "the export's snapshot to open")

        async def released() -> bool:
            return await open_transactions(watcher) == 0

        # The client reads nothing: the export waits for it, then gives up.
        await wait_until(released, BOUND, "the stalled export to release its snapshot")
        data, closed = await asyncio.to_thread(read_until_closed, sock)
    finally:
        sock.close()
        await watcher.close()
    assert closed
    assert data.startswith(b"HTTP/1.1 200")
    assert not data.endswith(b"0\r\n\r\n"), "the cut export looks complete"
    assert data.count(b"\n") < rows  # a part of it, not all


async def test_postgresql_ends_an_export_left_waiting_past_its_idle_bound(
    client: AppClient, database_url: str
) -> None:
    """The backstop behind the response's own cut: were the api never to come back for the
    next chunk, PostgreSQL itself ends the export's transaction."""
    sent = await client.post(
        "/datasets", params={"name": "big"}, content=csv_rows(20_000), headers=_CSV
    )
    assert sent.status_code == 201, sent.text
    watcher = await asyncpg.connect(database_url)
    try:
        with acting_as(Actor("default", "test", "export")):
            chunks = client.services.datasets.export_csv(
                "big",
                parse_query({}, default_limit=INT64_MAX, max_limit=INT64_MAX),
                idle_seconds=STALL,
            )
            assert (await anext(chunks)).startswith(b"id,label")
            await anext(chunks)  # rows: the cursor's transaction is open, then left waiting
            assert await open_transactions(watcher) == 1

            async def ended() -> bool:
                return await open_transactions(watcher) == 0

            await wait_until(ended, BOUND, "PostgreSQL to end the idle export")
            with pytest.raises(Unavailable):  # the session is gone
                await anext(chunks)
            await chunks.aclose()
    finally:
        await watcher.close()
