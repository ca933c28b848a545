"""The `items` table: one column of each query type, its Source, its rows, and a canary table
that an injection would have to touch."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from service.query import Column, ColumnType, Compiled, Source

ITEMS_DDL = """
CREATE TABLE items (
    id bigint PRIMARY KEY,
    name text,
    n bigint,
    small integer,             -- int4: values are still bound as bigint
    x double precision,
    flag boolean,
    at timestamptz,
    uid uuid,
    tags text[],
    meta jsonb,
    "we""ird name" text        -- needs quoting
);
CREATE TABLE canary (id integer);
INSERT INTO canary VALUES (1), (2), (3);
"""

ITEMS = Source(
    from_sql="items",
    columns=(
        Column("id", ColumnType.INTEGER),
        Column("name", ColumnType.TEXT),
        Column("n", ColumnType.INTEGER),
        Column("small", ColumnType.INTEGER),
        Column("x", ColumnType.FLOAT),
        Column("flag", ColumnType.BOOLEAN),
        Column("at", ColumnType.TIMESTAMP),
        Column("uid", ColumnType.UUID),
        Column("tags", ColumnType.TEXT_ARRAY),
        Column("meta", ColumnType.JSON),
        Column('we"ird name', ColumnType.TEXT),
    ),
    tiebreak=("id",),
)
COLUMN_NAMES = [c.name for c in ITEMS.columns]

U1 = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
U2 = uuid.UUID("00000000-0000-0000-0000-000000000002")

# id, name, n, small, x, flag, at, uid, tags, meta, weird
ROWS: list[tuple[Any, ...]] = [
    (1, "Iris model", 10, 1, 1.5, True, datetime(2026, 1, 1, tzinfo=UTC), U1,
     ["iris", "prod"], '{"k": 1}', "a"),
    (2, "wine", -5, 2, -2.25, False, datetime(2026, 6, 1, 12, tzinfo=UTC), U2, ["wine"], None,
     "b"),
    (3, "50%_off\\sale", 2**63 - 1, None, 0.0, None, None, None, [], '"s"', None),
    (4, "WINE cellar", None, 4, None, True, datetime(2025, 12, 31, 23, 59, tzinfo=UTC), None,
     None, None, "a"),
    (5, None, 10, 5, 1e300, False, datetime(2026, 1, 1, tzinfo=UTC), U1, ["prod"], None, "c"),
]  # fmt: skip


async def run(conn: asyncpg.Connection, compiled: Compiled) -> tuple[list[tuple[Any, ...]], int]:
    """The rows (as tuples, in order) and the total count of a compiled query."""
    rows = await conn.fetch(compiled.sql, *compiled.args)
    total = await conn.fetchval(compiled.count_sql, *compiled.args)
    assert isinstance(total, int)
    return [tuple(row) for row in rows], total
