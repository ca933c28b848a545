"""CSV ingest: all or nothing on a bad row deep in the file, the end-of-data marker, the body
limit while streaming, and proof that the body is spooled, not held in memory nor in an open
transaction, before COPY."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator

import asyncpg
import httpx2
import msgspec
import pytest

from service.settings import Settings
from tests.factories import CSV, ClientFactory, json_of

pytestmark = pytest.mark.anyio


def rows_csv(count: int, bad_row: int | None = None, start: int = 0) -> bytes:
    """`id,x,label`; row 10 has a label spanning three lines; `bad_row` (1-based) a bad x."""
    lines = [b"id,x,label"]
    for n in range(start + 1, start + count + 1):
        x = b"oops" if n == bad_row else b"%d.5" % n
        label = b'"multi\nline\nlabel"' if n == 10 else b"row %d" % n
        lines.append(b"%d,%s,%s" % (n, x, label))
    return b"\n".join(lines) + b"\n"


async def tables_in_schema(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'datasets'"
        )
        return count
    finally:
        await conn.close()


async def test_bad_row_deep_in_a_large_csv_stores_nothing(
    client: httpx2.AsyncClient, database_url: str
) -> None:
    body = rows_csv(60_000, bad_row=50_000)
    response = await client.post("/datasets", params={"name": "big"}, content=body, headers=CSV)
    assert response.status_code == 422, response.text
    problem = json_of(response)
    # Row 10 spans three lines, so PostgreSQL's line number is two ahead of the header + row.
    assert "row 50000 (line 50003), column 'x'" in problem["detail"]
    assert "oops" in problem["detail"] and "nothing was stored" in problem["detail"]
    assert problem["errors"][0]["loc"] == "$.data[49999].x"
    assert (await client.get("/datasets/big")).status_code == 404
    assert await tables_in_schema(database_url) == 0

    good = await client.post(
        "/datasets", params={"name": "big"}, content=rows_csv(60_000), headers=CSV
    )
    assert good.status_code == 201 and json_of(good)["rows"] == 60_000
    more = rows_csv(20_000, bad_row=60_000 + 19_999, start=60_000)
    appended = await client.post("/datasets/big/rows", content=more, headers=CSV)
    assert appended.status_code == 422 and "row 19999 (line 20000)" in json_of(appended)["detail"]
    assert json_of(await client.get("/datasets/big"))["rows"] == 60_000
    count = json_of(await client.get("/datasets/big/rows", params={"limit": 0}))["total"]
    assert count == 60_000
    short = b"id,x,label\n1,2.5\n"
    rejected = await client.post("/datasets/big/rows", content=short, headers=CSV)
    assert rejected.status_code == 422 and "row 1 (line 2)" in json_of(rejected)["detail"]


async def test_a_lone_end_of_data_marker_cannot_drop_rows(client: httpx2.AsyncClient) -> None:
    body = b"a\nfirst\n\\.\nlost\n"
    response = await client.post("/datasets", params={"name": "eod"}, content=body, headers=CSV)
    assert response.status_code == 422 and "\\." in json_of(response)["detail"]
    assert (await client.get("/datasets/eod")).status_code == 404
    quoted = b'a\nfirst\n"\\."\nkept\n'
    response = await client.post("/datasets", params={"name": "eod"}, content=quoted, headers=CSV)
    assert response.status_code == 201 and json_of(response)["rows"] == 3
    items = json_of(await client.get("/datasets/eod/rows"))["items"]
    assert [r["a"] for r in items] == ["first", "\\.", "kept"]


async def test_duplicate_empty_reserved_or_missing_csv_headers_are_located(
    client: httpx2.AsyncClient,
) -> None:
    for body, loc in (
        (b"a,a\n1,2\n", "$.header[1]"),
        (b"a,,b\n1,2,3\n", "$.header[1]"),
        (b"a,__row\n1,2\n", "$.header[1]"),
        (b"", "$.header"),
    ):
        response = await client.post("/datasets", params={"name": "h"}, content=body, headers=CSV)
        assert response.status_code == 422, (body, response.text)
        assert json_of(response)["errors"][0]["loc"] == loc
    header_only = await client.post(
        "/datasets",
        params={"name": "h", "columns": ["n:integer", "extra:boolean"]},
        content=b"n,t\n",
        headers=CSV,
    )
    assert header_only.status_code == 201, header_only.text
    assert json_of(header_only)["columns"] == [
        {"name": "n", "type": "integer"},
        {"name": "t", "type": "text"},
        {"name": "extra", "type": "boolean"},
    ]


async def test_body_limit_applies_while_streaming(
    client_factory: ClientFactory, settings: Settings, database_url: str
) -> None:
    small = msgspec.structs.replace(
        settings, http=msgspec.structs.replace(settings.http, max_body_bytes=200_000)
    )
    client = await client_factory(small)
    body = rows_csv(30_000)  # about 600 kB

    async def streamed() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 16_384):
            yield body[i : i + 16_384]

    response = await client.post(
        "/datasets", params={"name": "big"}, content=streamed(), headers=CSV
    )
    assert response.status_code == 413, response.text
    declared = await client.post("/datasets", params={"name": "big"}, content=body, headers=CSV)
    assert declared.status_code == 413
    assert (await client.get("/datasets/big")).status_code == 404
    assert await tables_in_schema(database_url) == 0
    await client.post("/datasets", params={"name": "small"}, content=rows_csv(10), headers=CSV)
    appended = await client.post("/datasets/small/rows", content=streamed(), headers=CSV)
    assert appended.status_code == 413
    assert json_of(await client.get("/datasets/small"))["rows"] == 10


async def test_the_body_is_received_in_full_before_a_transaction_opens(
    client: httpx2.AsyncClient, database_url: str
) -> None:
    """While the client is still sending, the service holds no transaction and copies nothing
    (a stalled client must not pin a connection and its locks); the body goes to a file, so the
    request allocates far less Python memory than the body's size."""
    block = b"".join(b"%d,%d.25,some text for row %d\n" % (n, n, n) for n in range(1000))
    blocks = 200  # about 7 MB
    seen_busy: list[int] = []
    watcher = await asyncpg.connect(database_url)

    async def body() -> AsyncIterator[bytes]:
        yield b"id,x,label\n"
        for i in range(blocks):
            yield block
            if i == blocks // 2:
                seen_busy.append(await busy_backends())

    async def busy_backends() -> int:
        count: int = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
        )
        copying: int = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_progress_copy WHERE datname = current_database()"
        )
        return count + copying

    tracemalloc.start()
    try:
        response = await client.post(
            "/datasets", params={"name": "spooled"}, content=body(), headers=CSV
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await watcher.close()
    assert response.status_code == 201, response.text
    assert json_of(response)["rows"] == 1000 * blocks
    assert seen_busy == [0], "a transaction was open while the body was still arriving"
    assert peak < len(block) * blocks / 4, f"peak {peak} bytes for a {len(block) * blocks} body"


async def test_an_upload_that_cannot_be_spooled_is_a_503_and_stores_nothing(
    client_factory: ClientFactory, settings: Settings, database_url: str
) -> None:
    nowhere = msgspec.structs.replace(
        settings, http=msgspec.structs.replace(settings.http, spool_dir="/nonexistent/spool")
    )
    client = await client_factory(nowhere)
    body = rows_csv(30_000)

    async def streamed() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 16_384):
            yield body[i : i + 16_384]

    response = await client.post(
        "/datasets", params={"name": "big"}, content=streamed(), headers=CSV
    )
    assert response.status_code == 503, response.text
    assert "http.spool_dir" in json_of(response)["detail"]
    assert await tables_in_schema(database_url) == 0
    small = await client.post(
        "/datasets", params={"name": "small"}, content=rows_csv(10), headers=CSV
    )
    assert small.status_code == 201  # small uploads stay in memory
