"""Fixtures over the `items` table of `tests.query.items`: a connection with it, then its rows."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.query.items import ITEMS_DDL, ROWS


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection with `items` (empty) and `canary` (3 rows) created."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(ITEMS_DDL)
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def seeded(conn: asyncpg.Connection) -> asyncpg.Connection:
    """`conn` with ROWS inserted into `items`."""
    await conn.executemany(
        "INSERT INTO items VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)", ROWS
    )
    return conn
