"""compile_query without a database: the SQL text, its parameters, and every 400 it raises."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from service.domain.errors import BadRequest
from service.query import (
    Column,
    ColumnType,
    Compiled,
    Condition,
    Operator,
    Query,
    Source,
    compile_query,
    compile_where,
    escape_like,
    parse_query,
)
from tests.query.items import ITEMS

OWNED = Source(
    from_sql="models m",
    columns=(
        Column("name", ColumnType.TEXT, sql="m.name"),
        Column("n", ColumnType.INTEGER),
        Column("label", ColumnType.TEXT, sql="coalesce(m.title, m.name)"),
    ),
    tiebreak=("name",),
    base_where="m.owner = $1 AND m.deleted_at IS NULL",
    base_args=("alice",),
)


def compiled(params: Mapping[str, Sequence[str]], source: Source = ITEMS) -> Compiled:
    return compile_query(parse_query(params, allow_grouping=True), source)


def where_args(*terms: str) -> list[object]:
    return compiled({"where": list(terms)}).args


def rejected(params: Mapping[str, Sequence[str]], loc: str, *fragments: str) -> None:
    with pytest.raises(BadRequest) as caught:
        compiled(params)
    assert [e.loc for e in caught.value.errors] == [loc]
    for fragment in fragments:
        assert fragment in caught.value.errors[0].msg, caught.value.errors[0].msg


def test_default_select_order_and_paging() -> None:
    result = compiled({})
    columns = ", ".join(
        f'"{name}" AS "{name}"' for name in ["id", "name", "n", "small", "x", "flag", "at", "uid"]
    )
    assert result.sql == (
        f'SELECT {columns}, "tags" AS "tags", "meta" AS "meta", "we""ird name" AS "we""ird name" '
        'FROM items ORDER BY "id" ASC LIMIT 100 OFFSET 0'
    )
    assert result.count_sql == "SELECT count(*) FROM items"
    assert result.args == []
    assert result.columns == [c.name for c in ITEMS.columns]
    assert result.column_types == [c.type for c in ITEMS.columns]


def test_base_where_args_come_first_and_custom_sql_is_parenthesized() -> None:
    result = compiled(
        {
            "where": ["name = a", "label CONTAINS b", "n IN (1, 2)"],
            "where_boolean": ["OR"],
            "select": ["label"],
            "order_by": ["n"],
            "order_by_sort": ["desc"],
            "limit": ["5"],
            "offset": ["10"],
        },
        OWNED,
    )
    where = (
        " WHERE (m.owner = $1 AND m.deleted_at IS NULL) AND ((m.name) = $2::text OR "
        "(coalesce(m.title, m.name)) LIKE $3::text ESCAPE E'\\\\' OR \"n\" = ANY($4::bigint[]))"
    )
    assert result.sql == (
        'SELECT (coalesce(m.title, m.name)) AS "label" FROM models m'
        + where
        + ' ORDER BY "n" DESC, (m.name) ASC LIMIT 5 OFFSET 10'
    )
    assert result.count_sql == "SELECT count(*) FROM models m" + where
    assert result.args == ["alice", "a", "%b%", [1, 2]]


def test_where_compiles_alone_after_the_sources_own_condition() -> None:
    query = parse_query({"where": ["n > 3"]})
    assert compile_where(query.where, "AND", OWNED) == (
        '(m.owner = $1 AND m.deleted_at IS NULL) AND ("n" > $2::bigint)',
        ["alice", 3],
    )
    assert compile_where([], "AND", ITEMS) == ("", [])


@pytest.mark.parametrize(
    ("term", "sql", "args"),
    [
        ("n = 1", '"n" = $1::bigint', [1]),
        ("n != 1", '"n" <> $1::bigint', [1]),
        ("n < 1", '"n" < $1::bigint', [1]),
        ("n <= 1", '"n" <= $1::bigint', [1]),
        ("n > 1", '"n" > $1::bigint', [1]),
        ("n >= 1", '"n" >= $1::bigint', [1]),
        ("x = 1.5", '"x" = $1::double precision', [1.5]),
        ("flag = TRUE", '"flag" = $1::boolean', [True]),
        ("at < 2026-01-01", '"at" < $1::timestamptz', [datetime(2026, 1, 1, tzinfo=UTC)]),
        ("uid = " + "0" * 32, '"uid" = $1::uuid', [uuid.UUID(int=0)]),
        ("name LIKE a%", '"name" LIKE $1::text', ["a%"]),
        ("name NOTLIKE a%", '"name" NOT LIKE $1::text', ["a%"]),
        ("name ILIKE a%", '"name" ILIKE $1::text', ["a%"]),
        ("name NOTILIKE a%", '"name" NOT ILIKE $1::text', ["a%"]),
        ("name CONTAINS 5%_\\", "\"name\" LIKE $1::text ESCAPE E'\\\\'", ["%5\\%\\_\\\\%"]),
        ("name STARTSWITH a", "\"name\" LIKE $1::text ESCAPE E'\\\\'", ["a%"]),
        ("name ENDSWITH a", "\"name\" LIKE $1::text ESCAPE E'\\\\'", ["%a"]),
        ("name IN (a, 'b')", '"name" = ANY($1::text[])', [["a", "b"]]),
        ("tags CONTAINS prod", '"tags" @> ARRAY[$1::text]', ["prod"]),
        ("tags IS NULL", '"tags" IS NULL', []),
        ("meta IS NOT NULL", '"meta" IS NOT NULL', []),
        ('"we\\"ird name" = a', '"we""ird name" = $1::text', ["a"]),
    ],
)
def test_each_operator_compiles_to_its_sql_with_bound_values(
    term: str, sql: str, args: list[object]
) -> None:
    result = compiled({"where": [term]})
    assert f"WHERE ({sql}) ORDER BY" in result.sql
    assert result.args == args


def test_like_wildcards_and_backslashes_are_escaped() -> None:
    assert escape_like("a%b_c\\d") == "a\\%b\\_c\\\\d"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("-9223372036854775808", -(2**63)),
        ("+9223372036854775807", 2**63 - 1),
        ("007", 7),
    ],
)
def test_integer_literals_bind_as_integers(value: str, expected: int) -> None:
    assert where_args(f"n = {value}") == [expected]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", 1.0), ("-0.5", -0.5), (".5", 0.5), ("5.", 5.0), ("1e-400", 0.0), ("1.5E+3", 1500.0)],
)
def test_float_literals_bind_as_floats(value: str, expected: float) -> None:
    assert where_args(f"x = {value}") == [expected]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-28T10:00:00.123Z", datetime(2026, 11, 28, 10, 0, 0, 123000, tzinfo=UTC)),
        ("2026-11-28t10:00:00z", datetime(2026, 11, 28, 10, tzinfo=UTC)),
        ('"2026-11-28 10:00"', datetime(2026, 11, 28, 10, tzinfo=UTC)),
        ("2026-11-28T10:00:00", datetime(2026, 11, 28, 10, tzinfo=UTC)),  # naive → UTC
        ("2026-11-28T10:00:00+02:30", datetime(2026, 11, 28, 7, 30, tzinfo=UTC)),
        ("2026-11-28T10:00:00.1234567891-01:00", datetime(2026, 11, 28, 11, 0, 0, 123456, UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999Z", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2024-02-29", datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_timestamp_literals_bind_as_utc_datetimes(value: str, expected: datetime) -> None:
    (arg,) = where_args(f"at = {value}")
    assert arg == expected
    assert isinstance(arg, datetime) and arg.tzinfo is UTC


def test_boolean_uuid_and_text_literals_bind_as_their_types() -> None:
    assert where_args("flag = True", "flag IN (false, FALSE)") == [True, [False, False]]
    u = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    assert where_args(f"uid = {u}", f"uid = {u.hex.upper()}") == [u, u]
    assert where_args("name = 123", "name = ''", "name = 'ünï ☃'") == ["123", "", "ünï ☃"]


@pytest.mark.parametrize(
    ("term", "fragments"),
    [
        ("n = 9223372036854775808", ["column 'n' (integer)", "'9223372036854775808'", "range"]),
        ("n = -9223372036854775809", ["outside the 64-bit integer range"]),
        ("n = 1.0", ["expected an integer, got '1.0'"]),
        ("n = 1e3", ["expected an integer"]),
        ("n = ١", ["expected an integer"]),
        ("n = 1_000", ["expected an integer"]),
        ("n = ''", ["expected an integer, got ''"]),
        ("small IN (1, x)", ["column 'small' (integer)", "got 'x'"]),
        ("x = nan", ["expected a number, got 'nan'"]),
        ("x = inf", ["expected a number"]),
        ("x = -Infinity", ["expected a number"]),
        ("x = 1e309", ["'1e309' is outside the floating-point range"]),
        ("x = 0x10", ["expected a number"]),
        ("flag = yes", ["column 'flag' (boolean)", "expected true or false, got 'yes'"]),
        ("flag = 1", ["expected true or false"]),
        ("flag = truе", ["expected true or false"]),  # Cyrillic е
        ("uid = 123", ["column 'uid' (uuid)", "expected a UUID, got '123'"]),
        ("uid = " + "0_" * 16, ["expected a UUID"]),
        ("uid = " + "g" * 32, ["expected a UUID"]),
        ("at = yesterday", ["column 'at' (timestamp)", "expected an RFC 3339 timestamp"]),
        ("at = 0000-01-01", ["'0000-01-01' is not a valid date and time"]),
        ("at = 2026-13-01", ["not a valid date and time"]),
        ("at = 2026-02-30", ["not a valid date and time"]),
        ("at = 2026-01-01T24:00:00Z", ["not a valid date and time"]),
        ("at = 2026-01-01T23:59:60Z", ["not a valid date and time"]),
        ("at = 2026-01-01T00:00:00+24:00", ["invalid UTC offset"]),
        ("at = 2026-01-01T00:00:00+01:60", ["invalid UTC offset"]),
        ("at = 0001-01-01T00:00:00+05:00", ["not a valid date and time"]),  # < year 1 in UTC
        ("at = 9999-12-31T23:59:59-05:00", ["not a valid date and time"]),  # > year 9999 in UTC
        ("at = 12026-01-01", ["expected an RFC 3339 timestamp"]),
        ("at = 2026-1-1", ["expected an RFC 3339 timestamp"]),
        ("nope = 1", ["unknown column 'nope'", "known columns: id, name, n,"]),
        ("Name = 1", ["unknown column 'Name'"]),
        ("n LIKE 1", ["LIKE does not apply to integer column 'n'"]),
        ("x CONTAINS 1", ["CONTAINS does not apply to float column 'x'"]),
        ("tags = a", ["= does not apply to text_array column 'tags'"]),
        ("tags STARTSWITH a", ["STARTSWITH does not apply to text_array"]),
        ("meta = 1", ["= does not apply to json column 'meta'"]),
        ("meta CONTAINS a", ["CONTAINS does not apply to json"]),
        ("name LIKE a\\", ["cannot end with a single backslash"]),
        ("name NOTILIKE 'a\\\\\\\\\\\\'", ["cannot end with a single backslash"]),
    ],
)
def test_value_and_column_errors(term: str, fragments: list[str]) -> None:
    rejected({"where": ["n = 1", term]}, "where[1]", *fragments)


def test_like_patterns_ending_in_an_escaped_backslash_are_fine() -> None:
    assert where_args("name LIKE 'a\\\\\\\\'") == ["a\\\\"]


def test_select_and_order_errors() -> None:
    rejected({"select": ["id", "nope"]}, "select[1]", "unknown column 'nope'")
    rejected({"select": ["id", "name", "id"]}, "select[2]", "'id' selected twice")
    rejected({"order_by": ["nope"]}, "order_by[0]", "unknown column 'nope'")
    rejected({"order_by": ["meta"]}, "order_by[0]", "JSON columns cannot be ordered")
    rejected({"order_by": ["n", "n"]}, "order_by[1]", "'n' ordered twice")


def test_order_keys_then_tiebreak_without_repeating() -> None:
    sql = compiled({"order_by": ["id", "n"], "order_by_sort": ["desc"]}).sql
    assert sql.endswith('ORDER BY "id" DESC, "n" ASC LIMIT 100 OFFSET 0')
    sql = compiled({"order_by": ["tags"]}).sql  # arrays are ordered element-wise
    assert sql.endswith('ORDER BY "tags" ASC, "id" ASC LIMIT 100 OFFSET 0')


def test_grouping_compiles_to_group_by_with_named_aggregates() -> None:
    result = compiled(
        {
            "group_by": ["flag", "name"],
            "select": ["name"],
            "aggregate": ["n", "x", "x", "uid", "flag", "flag", "meta", "tags"],
            "aggregate_func": ["sum", "avg", "stddev", "min", "min", "max", "count", "max"],
            "order_by": ["x_avg", "name"],
            "order_by_sort": ["desc"],
            "where": ["n > 0"],
        }
    )
    outputs = (
        '"name" AS "name", sum("n"::numeric) AS "n_sum", avg("x"::numeric) AS "x_avg", '
        'stddev_samp("x"::numeric) AS "x_stddev", min("uid"::text COLLATE "C")::uuid AS '
        '"uid_min", bool_and("flag") AS "flag_min", bool_or("flag") AS "flag_max", '
        'count("meta") AS "meta_count", max("tags") AS "tags_max"'
    )
    body = 'FROM items WHERE ("n" > $1::bigint) GROUP BY "flag", "name"'
    assert result.sql == (
        f'SELECT {outputs} {body} ORDER BY avg("x"::numeric) DESC, "name" ASC, "flag" ASC '
        "LIMIT 100 OFFSET 0"
    )
    assert result.count_sql == f"SELECT count(*) FROM (SELECT 1 {body}) AS grouped"
    assert result.columns == [
        "name", "n_sum", "x_avg", "x_stddev", "uid_min", "flag_min", "flag_max", "meta_count",
        "tags_max",
    ]  # fmt: skip
    T = ColumnType
    assert result.column_types == [
        T.TEXT, T.INTEGER, T.FLOAT, T.FLOAT, T.UUID, T.BOOLEAN, T.BOOLEAN, T.INTEGER, T.TEXT_ARRAY
    ]  # fmt: skip


def test_group_by_defaults_and_aggregates_alone() -> None:
    result = compiled({"group_by": ["flag"]})
    assert result.sql.startswith('SELECT "flag" AS "flag" FROM items GROUP BY "flag" ORDER BY')
    result = compiled({"aggregate": ["n"], "aggregate_func": ["count"], "where": ["n > 1"]})
    assert result.sql == (
        'SELECT count("n") AS "n_count" FROM items WHERE ("n" > $1::bigint) LIMIT 100 OFFSET 0'
    )
    assert result.count_sql == (
        'SELECT count(*) FROM (SELECT count(*) FROM items WHERE ("n" > $1::bigint)) AS grouped'
    )


def test_impossible_groupings_and_aggregates_are_located() -> None:
    rejected({"group_by": ["nope"]}, "group_by[0]", "unknown column 'nope'")
    rejected({"group_by": ["meta"]}, "group_by[0]", "JSON column 'meta' cannot be grouped")
    rejected({"group_by": ["n", "n"]}, "group_by[1]", "'n' grouped twice")
    rejected({"group_by": ["n"], "select": ["n", "x"]}, "select[1]", "'x' is not a group_by")
    rejected({"group_by": ["n"], "select": ["zz"]}, "select[0]", "unknown column 'zz'")
    rejected({"group_by": ["n"], "select": ["n", "n"]}, "select[1]", "selected twice")
    rejected({"aggregate": ["n"], "aggregate_func": ["sum"], "select": ["n"]}, "select[0]", "not")
    for func in ("sum", "avg", "stddev"):
        for column in ("name", "flag", "at", "uid", "tags", "meta"):
            rejected(
                {"aggregate": [column], "aggregate_func": [func]},
                "aggregate[0]",
                f"{func} needs a numeric column",
            )
    for func in ("min", "max"):
        rejected({"aggregate": ["meta"], "aggregate_func": [func]}, "aggregate[0]", "JSON")
    rejected({"aggregate": ["zz"], "aggregate_func": ["count"]}, "aggregate[0]", "unknown")
    rejected(
        {"aggregate": ["n", "n"], "aggregate_func": ["sum", "sum"]},
        "aggregate[1]",
        "'n_sum' aggregated twice",
    )
    rejected(
        {"group_by": ["n"], "order_by": ["x"]},
        "order_by[0]",
        "order by group_by columns or aggregate results",
    )
    rejected({"group_by": ["n"], "order_by": ["n_sum"]}, "order_by[0]", "unknown column")


def test_aggregate_result_may_not_shadow_a_column() -> None:
    source = Source(
        "t",
        (Column("a", ColumnType.INTEGER), Column("a_sum", ColumnType.INTEGER)),
        tiebreak=("a",),
    )
    with pytest.raises(BadRequest, match="'a_sum' clashes with a column name"):
        compiled({"aggregate": ["a"], "aggregate_func": ["sum"]}, source)
    with pytest.raises(BadRequest, match="'a_sum' clashes with a column name"):
        compiled({"group_by": ["a_sum"], "aggregate": ["a"], "aggregate_func": ["sum"]}, source)


def hand_built(**fields: Any) -> None:
    with pytest.raises(BadRequest):
        compile_query(Query(**fields), ITEMS)


def test_hand_built_queries_are_checked_too() -> None:
    hand_built(limit=-1)
    hand_built(offset=2**63)
    hand_built(limit=True)
    hand_built(limit="1; DROP TABLE canary")
    hand_built(limit=1.5)
    hand_built(where_boolean="AND 1=1 OR")
    hand_built(order_by=[("n", "DESC; DROP")])
    hand_built(aggregates=[("n", "pg_sleep")])
    hand_built(where=[Condition("n", Operator.EQ, ())])
    hand_built(where=[Condition("n", Operator.EQ, ("1", "2"))])
    hand_built(where=[Condition("n", Operator.IS_NULL, ("1",))])
    hand_built(where=[Condition("n", Operator.IN, ())])
    hand_built(where=[Condition("n", Operator.IN, ("1",) * 1001)])
    hand_built(where=[Condition("name", Operator.EQ, ("a\x00",))])
    hand_built(where=[Condition("name", Operator.EQ, ("x" * 4097,))])
    hand_built(where=[Condition("name", Operator.EQ, ("a",))] * 51)
    hand_built(select=["id"] * 101)
    assert compile_query(Query(limit=2**63 - 1, offset=2**63 - 1), ITEMS).sql.endswith(
        "LIMIT 9223372036854775807 OFFSET 9223372036854775807"
    )


def test_a_source_needs_unique_columns_and_a_known_tiebreak() -> None:
    with pytest.raises(ValueError, match="at least one column"):
        Source("t", ())
    with pytest.raises(ValueError, match="unique"):
        Source("t", (Column("a", ColumnType.TEXT), Column("a", ColumnType.INTEGER)))
    with pytest.raises(ValueError, match="tiebreak"):
        Source("t", (Column("a", ColumnType.TEXT),), tiebreak=("b",))
    with pytest.raises(ValueError, match="tiebreak"):
        Source("t", (Column("a", ColumnType.JSON),), tiebreak=("a",))
    with pytest.raises(ValueError, match="column name"):
        Column("a\x00", ColumnType.TEXT)
    with pytest.raises(ValueError, match="column name"):
        Column("", ColumnType.TEXT)


def test_timezone_offsets_are_normalised() -> None:
    (arg,) = where_args("at = 2026-01-01T00:00:00-23:59")
    assert isinstance(arg, datetime)
    assert arg == datetime(2026, 1, 1, tzinfo=timezone(-timedelta(hours=23, minutes=59)))
    assert math.isclose(where_args("x = 1e308")[0], 1e308)  # type: ignore[arg-type]
