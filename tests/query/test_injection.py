"""An injection corpus in every parameter: the canary table survives, no extra rows come back,
and no payload text ever reaches the SQL (values travel only as bind parameters)."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import pytest

from service.domain.errors import BadRequest
from service.query import compile_query, parse_query
from tests.injection import PAYLOADS, quote
from tests.query.items import ITEMS, ROWS, run

pytestmark = pytest.mark.anyio

FORBIDDEN_IN_SQL = [";", "--", "/*", "*/", "UNION", "DROP", "canary", "pg_sleep", "COPY", "$$"]


Params = dict[str, list[str]]
POSITIONS: dict[str, Callable[[str], Params]] = {
    "where value": lambda p: {"where": [f"name = {quote(p)}"]},
    "where bare value": lambda p: {"where": [f"name = {p}"]},
    "where typed value": lambda p: {"where": [f"n = {quote(p)}"]},
    "where IN item": lambda p: {"where": [f"name IN (nomatch, {quote(p)})"]},
    "where LIKE": lambda p: {"where": [f"name LIKE {quote(p)}"]},
    "where CONTAINS": lambda p: {"where": [f"name CONTAINS {quote(p)}", "tags CONTAINS nomatch"],
                                 "where_boolean": ["OR"]},
    "where column": lambda p: {"where": [f"{p} = 1"]},
    "where quoted column": lambda p: {"where": [f"{quote(p)} = 1"]},
    "where operator": lambda p: {"where": [f"name {p} x"]},
    "where term": lambda p: {"where": [p]},
    "where_boolean": lambda p: {"where": ["name = nomatch", "n = 0"], "where_boolean": [p]},
    "select": lambda p: {"select": ["id", p]},
    "order_by": lambda p: {"order_by": [p]},
    "order_by_sort": lambda p: {"order_by": ["name"], "order_by_sort": [p]},
    "limit": lambda p: {"limit": [p]},
    "offset": lambda p: {"offset": [p]},
    "group_by": lambda p: {"group_by": [p]},
    "aggregate": lambda p: {"aggregate": [p], "aggregate_func": ["count"]},
    "aggregate_func": lambda p: {"aggregate": ["n"], "aggregate_func": [p]},
    "parameter name": lambda p: {p: ["1"]},
}  # fmt: skip
# Where the matching rows are known: a payload value equals no row's value.
MATCHES_NOTHING = {"where value", "where bare value", "where IN item", "where_boolean"}


async def check_survivors(conn: asyncpg.Connection) -> None:
    assert await conn.fetchval("SELECT count(*) FROM canary") == 3
    assert await conn.fetchval("SELECT count(*) FROM items") == len(ROWS)


async def test_no_payload_in_any_position_changes_the_sql_or_the_data(
    seeded: asyncpg.Connection,
) -> None:
    for position in POSITIONS:
        await try_position(seeded, position)


async def try_position(seeded: asyncpg.Connection, position: str) -> None:
    accepted = 0
    for payload in PAYLOADS:
        params = POSITIONS[position](payload)
        try:
            compiled = compile_query(parse_query(params, allow_grouping=True), ITEMS)
        except BadRequest:
            continue
        accepted += 1
        for fragment in FORBIDDEN_IN_SQL:
            assert fragment not in compiled.sql + compiled.count_sql, (position, payload)
        rows, total = await run(seeded, compiled)
        assert len(rows) <= total <= len(ROWS)
        if "id" in compiled.columns:
            ids = {row[compiled.columns.index("id")] for row in rows}
            assert ids <= {row[0] for row in ROWS}
        if position in MATCHES_NOTHING:
            assert rows == [] and total == 0, (position, payload, rows)
        await check_survivors(seeded)
    await check_survivors(seeded)
    # The corpus is meant to be mostly refused outside of values; values are data.
    if position in ("where value", "where LIKE", "where CONTAINS"):
        assert accepted >= len(PAYLOADS) - 8, position
