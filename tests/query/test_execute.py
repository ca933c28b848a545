"""Compiled queries on real PostgreSQL: every operator, typed values, ordering, paging, grouping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from service.query import compile_query, parse_query
from tests.query.items import ITEMS, ROWS, U1, U2, run

pytestmark = pytest.mark.anyio

MAX = 2**63 - 1
ROW4_AT, ROW5_AT = ROWS[3][6], ROWS[4][6]


async def fetch(
    conn: asyncpg.Connection, params: Mapping[str, Sequence[str]]
) -> tuple[list[tuple[Any, ...]], int]:
    return await run(conn, compile_query(parse_query(params, allow_grouping=True), ITEMS))


async def ids(conn: asyncpg.Connection, *where: str, boolean: str = "AND") -> list[int]:
    rows, total = await fetch(
        conn, {"where": list(where), "where_boolean": [boolean], "select": ["id"]}
    )
    assert total == len(rows)
    return [row[0] for row in rows]


# Each term with the ids it selects from ROWS. One test runs them all: a database per case
# would cost more than the cases.
OPERATOR_CASES = [
    ('name = "Iris model"', [1]),
    ("name = 'Iris model'", [1]),
    ("name != wine", [1, 3, 4]),  # SQL semantics: NULL matches no comparison
    ("n > 0", [1, 3, 5]),
    ("n >= 10", [1, 3, 5]),
    ("n < 10", [2]),
    ("n <= -5", [2]),
    (f"n = {MAX}", [3]),
    ("n = -9223372036854775808", []),
    ("n IN (10, -5)", [1, 2, 5]),
    ("small < 3000000000", [1, 2, 4, 5]),  # an int4 column, compared as bigint
    ("small IN (2, 9000000000)", [2]),
    ("x > 1", [1, 5]),
    ("x = 0", [3]),
    ("x = -0.0", [3]),
    ("x < -1e-3", [2]),
    ("x >= 1e300", [5]),
    ("x = 1.5e0", [1]),
    ("flag = true", [1, 4]),
    ("flag = FALSE", [2, 5]),
    ("flag != true", [2, 5]),
    ("flag IN (true, false)", [1, 2, 4, 5]),
    ("at = 2026-01-01", [1, 5]),
    ("at >= 2026-01-01T00:00:00Z", [1, 2, 5]),
    ('at < "2026-01-01T01:00:00+01:00"', [4]),
    ('at > "2025-12-31 23:58"', [1, 2, 4, 5]),
    ("at IS NULL", [3]),
    (f"uid = {U1}", [1, 5]),
    (f"uid = {U1.hex.upper()}", [1, 5]),
    (f"uid IN ({U2})", [2]),
    (f"uid != {U2}", [1, 5]),
    (f"uid < {U1}", [2]),
    ("name LIKE %ine%", [2]),
    ("name ILIKE %ine%", [2, 4]),
    ("name NOTLIKE %ine%", [1, 3, 4]),
    ("name NOTILIKE w%", [1, 3]),
    ("name LIKE 50\\%\\_%", [3]),
    ("name LIKE ______", []),
    ("name LIKE ____", [2]),
    ("name CONTAINS %", [3]),
    ("name CONTAINS _", [3]),
    ("name CONTAINS \\", [3]),
    ("name CONTAINS model", [1]),
    ("name CONTAINS ''", [1, 2, 3, 4]),
    ("name STARTSWITH 50%_", [3]),
    ("name STARTSWITH W", [4]),
    ('name ENDSWITH "\\\\sale"', [3]),
    ("name ENDSWITH e", [2, 3]),
    ('name IN (wine, "Iris model")', [1, 2]),
    ("name IS NULL", [5]),
    ("name IS NOT NULL", [1, 2, 3, 4]),
    ("tags CONTAINS prod", [1, 5]),
    ("tags CONTAINS nothing", []),
    ("tags IS NULL", [4]),
    ("meta IS NULL", [2, 4, 5]),
    ("meta IS NOT NULL", [1, 3]),
    ('"we\\"ird name" = a', [1, 4]),
    ("id = 1", [1]),
]


async def test_every_operator_selects_the_expected_rows(seeded: asyncpg.Connection) -> None:
    wrong = [
        (term, got, expected)
        for term, expected in OPERATOR_CASES
        if (got := await ids(seeded, term)) != expected
    ]
    assert wrong == []


async def test_terms_combine_with_and_or_or(seeded: asyncpg.Connection) -> None:
    assert await ids(seeded, "name = wine", f"n = {MAX}", boolean="OR") == [2, 3]
    assert await ids(seeded, "name = wine", f"n = {MAX}", boolean="and") == []
    assert await ids(seeded, "flag = true", "n > 0") == [1]
    assert await ids(seeded) == [1, 2, 3, 4, 5]


async def test_select_order_and_paging(seeded: asyncpg.Connection) -> None:
    rows, total = await fetch(seeded, {"select": ["name", "id"], "order_by": ["x"],
                                       "order_by_sort": ["desc"]})  # fmt: skip
    # desc puts NULLs first; ties fall back to id
    assert [row[1] for row in rows] == [4, 5, 1, 3, 2] and total == 5
    assert rows[0] == ("WINE cellar", 4)
    rows, _ = await fetch(seeded, {"select": ["id"], "order_by": ["n"]})
    assert [row[0] for row in rows] == [2, 1, 5, 3, 4]
    rows, _ = await fetch(seeded, {"select": ["id"], "order_by": ["n"], "order_by_sort": ["desc"]})
    assert [row[0] for row in rows] == [4, 3, 1, 5, 2]
    rows, total = await fetch(seeded, {"select": ["id"], "limit": ["2"], "offset": ["1"]})
    assert rows == [(2,), (3,)] and total == 5
    rows, total = await fetch(seeded, {"limit": ["0"]})
    assert rows == [] and total == 5
    rows, total = await fetch(seeded, {"offset": [str(MAX)]})
    assert rows == [] and total == 5
    rows, _ = await fetch(seeded, {"select": ["tags", "meta"], "where": ["id = 1"]})
    assert rows == [(["iris", "prod"], '{"k": 1}')]


async def test_group_by_with_aggregates(seeded: asyncpg.Connection) -> None:
    rows, total = await fetch(
        seeded,
        {
            "group_by": ["flag"],
            "aggregate": ["n", "n", "x", "uid", "at", "name"],
            "aggregate_func": ["count", "sum", "min", "max", "min", "max"],
        },
    )
    assert total == 3
    assert rows == [
        (False, 2, Decimal(5), -2.25, U1, ROW5_AT, "wine"),
        (True, 1, Decimal(10), 1.5, U1, ROW4_AT, "WINE cellar"),
        (None, 1, Decimal(MAX), 0.0, None, None, "50%_off\\sale"),
    ]


async def test_aggregates_cannot_overflow(seeded: asyncpg.Connection) -> None:
    # float8 would raise "value out of range: overflow" on 1e300² and on MAX + 15.
    rows, total = await fetch(
        seeded,
        {
            "aggregate": ["n", "x", "x", "n", "flag", "flag", "uid", "tags", "meta"],
            "aggregate_func": ["sum", "stddev", "avg", "avg", "min", "max", "min", "max", "count"],
        },
    )
    assert total == 1
    ((n_sum, x_stddev, x_avg, n_avg, flag_min, flag_max, uid_min, tags_max, meta_count),) = rows
    assert n_sum == Decimal(MAX + 15)
    assert isinstance(x_stddev, Decimal) and 4.9e299 < x_stddev < 5.1e299
    assert isinstance(x_avg, Decimal) and 2.4e299 < x_avg < 2.6e299
    assert abs(n_avg - Decimal(MAX + 15) / 4) <= 1
    assert (flag_min, flag_max, uid_min, tags_max, meta_count) == (False, True, U2, ["wine"], 2)


async def test_grouped_order_and_paging(seeded: asyncpg.Connection) -> None:
    params = {
        "group_by": ["name", "flag"],
        "select": ["flag"],
        "aggregate": ["id"],
        "aggregate_func": ["count"],
        "order_by": ["id_count", "flag"],
        "order_by_sort": ["desc", "desc"],
        "where": ["id < 5"],
        "limit": ["2"],
    }
    rows, total = await fetch(seeded, params)
    assert total == 4
    # All counts are 1; flag desc (NULLs first), then group keys name, flag.
    assert rows == [(None, 1), (True, 1)]
    rows, total = await fetch(seeded, {**params, "offset": ["3"]})
    assert rows == [(False, 1)] and total == 4


async def test_aggregates_over_no_rows_give_one_row_and_groups_give_none(
    seeded: asyncpg.Connection,
) -> None:
    rows, total = await fetch(
        seeded, {"aggregate": ["n", "n"], "aggregate_func": ["count", "sum"], "where": ["id > 9"]}
    )
    assert rows == [(0, None)] and total == 1
    rows, total = await fetch(seeded, {"group_by": ["tags"], "where": ["id > 9"]})
    assert rows == [] and total == 0
    rows, total = await fetch(seeded, {"group_by": ["tags"]})
    assert total == 5 and len(rows) == 5


async def test_base_where_and_args(seeded: asyncpg.Connection) -> None:
    from service.query import Source

    source = Source(
        "items i", ITEMS.columns, ("id",), base_where="i.flag = $1 AND i.n > $2",
        base_args=(True, 0),
    )  # fmt: skip
    compiled = compile_query(parse_query({"select": ["id"], "where": ["n < 100"]}), source)
    assert await run(seeded, compiled) == ([(1,)], 1)
