"""parse_query and parse_condition: syntax, parameter handling, limits and error locations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from service.domain.errors import BadRequest
from service.query import (
    Condition,
    Operator,
    Query,
    group_params,
    parse_condition,
    parse_conditions,
    parse_query,
)


def cond(term: str) -> Condition:
    return parse_condition(term, "where[0]")


def rejects(
    params: Mapping[str, Sequence[str]], loc: str, *fragments: str, grouping: bool = True
) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse_query(params, allow_grouping=grouping)
    error = caught.value
    assert [e.loc for e in error.errors] == [loc]
    assert loc in error.detail
    for fragment in fragments:
        assert fragment in error.errors[0].msg
    return error


@pytest.mark.parametrize(
    ("term", "op", "values"),
    [
        ("a = 1", Operator.EQ, ("1",)),
        ("a != 1", Operator.NE, ("1",)),
        ("a > 1", Operator.GT, ("1",)),
        ("a >= 1", Operator.GE, ("1",)),
        ("a < 1", Operator.LT, ("1",)),
        ("a <= 1", Operator.LE, ("1",)),
        ("a LIKE x%", Operator.LIKE, ("x%",)),
        ("a like x%", Operator.LIKE, ("x%",)),
        ("a NOTLIKE x%", Operator.NOTLIKE, ("x%",)),
        ("a ILIKE x%", Operator.ILIKE, ("x%",)),
        ("a NotILike x%", Operator.NOTILIKE, ("x%",)),
        ("a CONTAINS x", Operator.CONTAINS, ("x",)),
        ("a startswith x", Operator.STARTSWITH, ("x",)),
        ("a EndsWith x", Operator.ENDSWITH, ("x",)),
        ("a IN (x)", Operator.IN, ("x",)),
        ("a in (x, 'y z', \"w\")", Operator.IN, ("x", "y z", "w")),
        ("a IS NULL", Operator.IS_NULL, ()),
        ("a is not null", Operator.IS_NOT_NULL, ()),
    ],
)
def test_every_operator_parses_to_its_condition(
    term: str, op: Operator, values: tuple[str, ...]
) -> None:
    assert cond(term) == Condition("a", op, values)


def test_quoted_values_and_columns() -> None:
    assert cond('title = "Iris model"') == Condition("title", Operator.EQ, ("Iris model",))
    assert cond("title = 'Iris model'") == Condition("title", Operator.EQ, ("Iris model",))
    assert cond(r'title = "a \"b\" \\ c"') == Condition("title", Operator.EQ, ('a "b" \\ c',))
    assert cond('"petal width" > 1') == Condition("petal width", Operator.GT, ("1",))
    assert cond('"in" in (in)') == Condition("in", Operator.IN, ("in",))
    # Operator words are positional: a column may be called LIKE.
    assert cond("like like like") == Condition("like", Operator.LIKE, ("like",))


@pytest.mark.parametrize(
    ("term", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("= 1", "expected a column name, got '='"),
        ("a", "missing operator after column 'a'"),
        ("a == 1", "expected a value after =, got '='"),
        ("a <> 1", "expected a value after <, got '>'"),
        ("a ~ 1", "unknown operator '~' after column 'a'"),
        ("a BETWEEN 1", "unknown operator 'BETWEEN'"),
        ("a ın (x)", "unknown operator 'ın'"),  # dotless i: upper() would make it IN
        ("a =", "missing value after ="),
        ("a = 1 2", "unexpected '2' after the term"),
        ("a = b; DROP TABLE x", "unexpected 'DROP'"),
        ("a = b OR 1 = 1", "unexpected 'OR'"),
        ("a IS", "expected NULL or NOT NULL after IS"),
        ("a IS NOT", "expected NULL or NOT NULL after IS"),
        ("a IS 1", "expected NULL or NOT NULL after IS"),
        ("a IS NULL x", "unexpected 'x'"),
        ("a IN x", "expected '(' after IN"),
        ("a IN ()", "expected a value after IN, got ')'"),
        ("a IN (x", "expected ',' or ')'"),
        ("a IN (x,)", "expected a value after IN, got ')'"),
        ("a IN ((x))", "expected a value after IN, got '('"),
        ("a IN (x) y", "unexpected 'y'"),
        ("a = (x)", "expected a value after =, got '('"),
        ("a = 'x", "unterminated quote"),
    ],
)
def test_malformed_terms_are_located_with_the_reason(term: str, fragment: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_conditions(["a = 1", term])
    assert caught.value.errors[0].loc == "where[1]"
    assert fragment in caught.value.errors[0].msg


def test_an_empty_query_takes_the_defaults() -> None:
    assert parse_query({}) == Query()
    assert Query().limit == 100 and Query().where_boolean == "AND"
    assert parse_query({}, default_limit=7).limit == 7


def test_every_parameter_is_parsed() -> None:
    query = parse_query(
        {
            "where": ["a = 1", "b IS NULL"],
            "where_boolean": ["or"],
            "select": ["a", "b"],
            "order_by": ["a", "b", "c"],
            "order_by_sort": ["DESC", "asc"],
            "limit": ["0"],
            "offset": ["9223372036854775807"],
            "group_by": ["a"],
            "aggregate": ["b", "c"],
            "aggregate_func": ["COUNT", "stddev"],
        },
        allow_grouping=True,
    )
    assert query == Query(
        where=[Condition("a", Operator.EQ, ("1",)), Condition("b", Operator.IS_NULL)],
        where_boolean="OR",
        select=["a", "b"],
        order_by=[("a", "desc"), ("b", "asc"), ("c", "asc")],
        limit=0,
        offset=2**63 - 1,
        group_by=["a"],
        aggregates=[("b", "count"), ("c", "stddev")],
    )


def test_plain_strings_count_as_one_value() -> None:
    assert parse_query({"limit": "12", "where": "a = 1"}) == Query(
        where=[Condition("a", Operator.EQ, ("1",))], limit=12
    )


def test_repeated_parameters_are_grouped_in_order() -> None:
    items = [("where", "a = 1"), ("limit", "3"), ("where", "b = 2")]
    assert group_params(items) == {"where": ["a = 1", "b = 2"], "limit": ["3"]}


def test_query_round_trips_through_msgspec() -> None:
    import msgspec

    query = parse_query({"where": ["a IN (1, 2)"], "order_by": ["a"]})
    assert msgspec.json.decode(msgspec.json.encode(query), type=Query) == query


def test_unknown_parameter_names_are_refused_and_quoted_safely() -> None:
    rejects({"wher": ["a = 1"]}, "wher", "unknown query parameter")
    rejects({"x" * 500: ["1"]}, repr("x" * 40 + "…"), "unknown")
    rejects({"a\x00": ["1"]}, repr("a\x00"), "unknown")
    # The caller's own parameters pass through untouched.
    assert parse_query({"status": ["x\x00"], "limit": ["5"]}, extra_allowed={"status"}).limit == 5


def test_grouping_needs_permission() -> None:
    for name in ("group_by", "aggregate", "aggregate_func"):
        rejects({name: ["a"]}, name, "grouping is not available", grouping=False)


@pytest.mark.parametrize(
    ("params", "loc", "fragment"),
    [
        ({"where_boolean": ["XOR"]}, "where_boolean", "expected AND or OR, got 'XOR'"),
        ({"where_boolean": ["AND", "OR"]}, "where_boolean", "more than once"),
        ({"where_boolean": [""]}, "where_boolean", "expected AND or OR"),
        ({"limit": ["10001"]}, "limit", "from 0 to 10000"),
        ({"limit": ["-1"]}, "limit", "got '-1'"),
        ({"limit": ["1.5"]}, "limit", "got '1.5'"),
        ({"limit": ["1_0"]}, "limit", "got '1_0'"),
        ({"limit": ["١٢"]}, "limit", "got '١٢'"),
        ({"limit": [" 5"]}, "limit", "got ' 5'"),
        ({"limit": [""]}, "limit", "got ''"),
        ({"limit": ["1", "2"]}, "limit", "more than once"),
        ({"offset": ["9223372036854775808"]}, "offset", "from 0 to 9223372036854775807"),
        ({"offset": ["99999999999999999999999"]}, "offset", "got"),
        ({"order_by": ["a"], "order_by_sort": ["up"]}, "order_by_sort[0]", "got 'up'"),
        ({"order_by": ["a"], "order_by_sort": ["asc", "asc"]}, "order_by_sort", "2 sorts for 1"),
        ({"aggregate": ["a"], "aggregate_func": []}, "aggregate_func", "0 functions for 1"),
        ({"aggregate": ["a"]}, "aggregate_func", "0 functions for 1"),
        ({"aggregate_func": ["sum"]}, "aggregate_func", "1 functions for 0"),
        ({"aggregate": ["a"], "aggregate_func": ["median"]}, "aggregate_func[0]", "'median'"),
        ({"select": ["a", "b\x00"]}, "select[1]", "NUL"),
        ({"order_by": ["\ud800"]}, "order_by[0]", "not valid Unicode"),
        ({"group_by": ["g" * 1001]}, "group_by[0]", "longer than 1000"),
        ({"limit": ["1" * 1001]}, "limit", "longer than 1000"),
        ({"select": ["a"] * 101}, "select", "more than 100"),
        ({"order_by_sort": ["asc"] * 101}, "order_by_sort", "more than 100"),
        ({"where": ["a = 1"] * 51}, "where", "more than 50"),
        ({"where": ["a = 1", "a = '" + "x" * 4097 + "'"]}, "where[1]", "longer than 4096"),
        ({"where": ["a = 'x\x00y'"]}, "where[0]", "NUL"),
    ],
)
def test_bad_parameter_values_are_located_with_the_reason(
    params: Mapping[str, Sequence[str]], loc: str, fragment: str
) -> None:
    rejects(params, loc, fragment)


def test_size_limits_accept_the_maximum() -> None:
    query = parse_query(
        {
            "where": ["a = '" + "x" * 4090 + "'"] + ["a = 1"] * 49,
            "select": ["s" * 1000] * 100,
            "limit": ["10000"],
        }
    )
    assert len(query.where) == 50 and len(query.select) == 100 and query.limit == 10_000
    items = ",".join(["1"] * 1000)
    assert len(cond(f"a IN ({items})").values) == 1000
    with pytest.raises(BadRequest, match="more than 1000 IN values"):
        cond(f"a IN ({items},1)")
