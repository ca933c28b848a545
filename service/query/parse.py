"""Query parameters → `Query`: syntax only; column names are checked by `compile_query`.

Parameters (each may be repeated where it says "list"):
  where           list; each `column operator value` (grammar below), at most 50
  where_boolean   AND | OR (case-insensitive; default AND): how where terms combine
  select          list of column names (default: every column)
  order_by        list of names; order_by_sort: parallel list of asc | desc (missing → asc)
  limit           0 ..max_limit (default default_limit); offset: 0 .. 2**63-1 (default 0)
  group_by, aggregate, aggregate_func   lists; only when the caller allows grouping

Grammar of a where term (tokens as in `tokens.py`):
  term    := column op value | column IN "(" value ("," value)* ")" | column IS [NOT] NULL
  column  := word | quoted
  op      := = | != | < | <= | > | >= | LIKE | NOTLIKE | ILIKE | NOTILIKE | CONTAINS
             | STARTSWITH | ENDSWITH       (words case-insensitive, ASCII only)
  value   := word | quoted
Every problem is a BadRequest naming the parameter, e.g. `where[2]` (0-based).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Literal

from service.query.limits import (
    INT64_MAX,
    MAX_IN_ITEMS,
    MAX_LIST_ENTRIES,
    MAX_VALUE_CHARS,
    MAX_WHERE_CHARS,
    MAX_WHERE_TERMS,
    bad,
    check_text,
    show,
)
from service.query.model import AGGREGATE_FUNCS, NULL_TESTS, Condition, Operator, Query
from service.query.tokens import Kind, Token, tokenize

QUERY_PARAMS = frozenset(
    {"where", "where_boolean", "select", "order_by", "order_by_sort", "limit", "offset"}
)
GROUPING_PARAMS = frozenset({"group_by", "aggregate", "aggregate_func"})
_SINGLE_VALUED = frozenset({"where_boolean", "limit", "offset"})

_WORD_OPERATORS = {
    op.value: op for op in Operator if op.value.isalpha()
}  # LIKE ... IN; IS [NOT] NULL is parsed separately
_BOOLEANS: Mapping[str, Literal["AND", "OR"]] = {"AND": "AND", "OR": "OR"}
_SORTS: Mapping[str, Literal["asc", "desc"]] = {"asc": "asc", "desc": "desc"}
_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: int() would also take "١٢" and "1_000"


def group_params(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Group `(name, value)` pairs (e.g. Starlette's `query_params.multi_items()`) by name."""
    grouped: dict[str, list[str]] = {}
    for name, value in items:
        grouped.setdefault(name, []).append(value)
    return grouped


def parse_query(
    params: Mapping[str, Sequence[str]],
    *,
    allow_grouping: bool = False,
    default_limit: int = 100,
    max_limit: int = 10_000,
    extra_allowed: Collection[str] = (),
) -> Query:
    """Parse multi-valued query parameters into a Query; raises BadRequest.

    Names in `extra_allowed` are the caller's own parameters (e.g. `status`) and are skipped;
    any other unknown name is an error, so a typo never silently widens a result.
    """
    values = _checked(params, allow_grouping, extra_allowed)
    order_by = values.get("order_by", [])
    sorts = values.get("order_by_sort", [])
    if len(sorts) > len(order_by):
        raise bad("order_by_sort", f"{len(sorts)} sorts for {len(order_by)} order_by columns")
    aggregates = values.get("aggregate", [])
    funcs = values.get("aggregate_func", [])
    if len(aggregates) != len(funcs):
        raise bad("aggregate_func", f"{len(funcs)} functions for {len(aggregates)} aggregates")
    return Query(
        where=parse_conditions(values.get("where", [])),
        where_boolean=_where_boolean(values),
        select=values.get("select", []),
        order_by=[
            (name, _sort(sorts[i], i) if i < len(sorts) else "asc")
            for i, name in enumerate(order_by)
        ],
        limit=_integer(values, "limit", default_limit, max_limit),
        offset=_integer(values, "offset", 0, INT64_MAX),
        group_by=values.get("group_by", []),
        aggregates=[(name, _func(funcs[i], i)) for i, name in enumerate(aggregates)],
    )


def parse_conditions(terms: Sequence[str], param: str = "where") -> list[Condition]:
    """Parse where terms; errors name `{param}[i]`."""
    if len(terms) > MAX_WHERE_TERMS:
        raise bad(param, f"more than {MAX_WHERE_TERMS} terms")
    conditions = []
    for i, term in enumerate(terms):
        loc = f"{param}[{i}]"
        check_text(loc, term, MAX_WHERE_CHARS)
        conditions.append(parse_condition(term, loc))
    return conditions


def parse_condition(term: str, loc: str) -> Condition:
    """Parse one where term (see the module docstring for its grammar)."""
    tokens = tokenize(term, loc)
    if not tokens:
        raise bad(loc, "empty; expected 'column operator value'")
    column = tokens[0]
    if column.kind not in (Kind.WORD, Kind.STRING):
        raise bad(loc, f"expected a column name, got {show(column.text)}")
    op, i = _operator(tokens, 1, loc)
    values: tuple[str, ...] = ()
    if op is Operator.IN:
        values, i = _in_list(tokens, i, loc)
    elif op not in NULL_TESTS:
        values, i = (_value(tokens, i, loc, op),), i + 1
    if i < len(tokens):
        raise bad(loc, f"unexpected {show(tokens[i].text)} after the term")
    return Condition(column.text, op, values)


def _checked(
    params: Mapping[str, Sequence[str]], allow_grouping: bool, extra_allowed: Collection[str]
) -> dict[str, list[str]]:
    """The known parameters as lists, after name, count and text checks."""
    checked: dict[str, list[str]] = {}
    for name, raw in params.items():
        if name in extra_allowed:
            continue
        loc = name if 0 < len(name) <= 40 and name.isprintable() else show(name)
        if name in GROUPING_PARAMS and not allow_grouping:
            raise bad(loc, "grouping is not available for this list")
        if name not in QUERY_PARAMS and name not in GROUPING_PARAMS:
            raise bad(loc, "unknown query parameter")
        values = [raw] if isinstance(raw, str) else list(raw)  # a str is a Sequence[str] too
        if name in _SINGLE_VALUED and len(values) > 1:
            raise bad(name, "given more than once")
        if name != "where" and len(values) > MAX_LIST_ENTRIES:
            raise bad(name, f"more than {MAX_LIST_ENTRIES} entries")
        if name != "where":  # where terms are checked with their own limit and index
            for i, value in enumerate(values):
                check_text(
                    name if name in _SINGLE_VALUED else f"{name}[{i}]", value, MAX_VALUE_CHARS
                )
        checked[name] = values
    return checked


def _operator(tokens: Sequence[Token], i: int, loc: str) -> tuple[Operator, int]:
    if i >= len(tokens):
        raise bad(loc, f"missing operator after column {show(tokens[0].text)}")
    token = tokens[i]
    if token.kind is Kind.SYMBOL:
        return Operator(token.text), i + 1
    word = token.text.upper() if token.kind is Kind.WORD and token.text.isascii() else ""
    if word in _WORD_OPERATORS:
        return _WORD_OPERATORS[word], i + 1
    if word == "IS":
        rest = [
            t.text.upper() if t.kind is Kind.WORD and t.text.isascii() else ""
            for t in tokens[i + 1 : i + 3]
        ]
        if rest[:1] == ["NULL"]:
            return Operator.IS_NULL, i + 2
        if rest == ["NOT", "NULL"]:
            return Operator.IS_NOT_NULL, i + 3
        raise bad(loc, "expected NULL or NOT NULL after IS")
    raise bad(
        loc,
        f"unknown operator {show(token.text)} after column {show(tokens[0].text)}; expected "
        "one of " + ", ".join(op.value for op in Operator),
    )


def _value(tokens: Sequence[Token], i: int, loc: str, op: Operator) -> str:
    if i >= len(tokens):
        raise bad(loc, f"missing value after {op.value}")
    token = tokens[i]
    if token.kind not in (Kind.WORD, Kind.STRING):
        raise bad(
            loc,
            f"expected a value after {op.value}, got {show(token.text)}"
            " (quote values that contain spaces or symbols)",
        )
    return token.text


def _in_list(tokens: Sequence[Token], i: int, loc: str) -> tuple[tuple[str, ...], int]:
    """The values of `( v, v, ... )` starting at token `i`, and the index after `)`."""
    if i >= len(tokens) or tokens[i].kind is not Kind.LPAREN:
        raise bad(loc, "expected '(' after IN")
    items: list[str] = []
    i += 1
    while True:
        items.append(_value(tokens, i, loc, Operator.IN))
        if len(items) > MAX_IN_ITEMS:
            raise bad(loc, f"more than {MAX_IN_ITEMS} IN values")
        i += 1
        if i < len(tokens) and tokens[i].kind is Kind.COMMA:
            i += 1
        elif i < len(tokens) and tokens[i].kind is Kind.RPAREN:
            return tuple(items), i + 1
        else:
            raise bad(loc, "expected ',' or ')' in the IN list")


def _where_boolean(values: Mapping[str, list[str]]) -> Literal["AND", "OR"]:
    given = values.get("where_boolean")
    if not given:
        return "AND"
    word = given[0].upper() if given[0].isascii() else ""
    if word not in _BOOLEANS:
        raise bad("where_boolean", f"expected AND or OR, got {show(given[0])}")
    return _BOOLEANS[word]


def _sort(text: str, i: int) -> Literal["asc", "desc"]:
    word = text.lower() if text.isascii() else ""
    if word not in _SORTS:
        raise bad(f"order_by_sort[{i}]", f"expected asc or desc, got {show(text)}")
    return _SORTS[word]


def _func(text: str, i: int) -> str:
    word = text.lower() if text.isascii() else ""
    if word not in AGGREGATE_FUNCS:
        raise bad(
            f"aggregate_func[{i}]",
            f"expected one of {', '.join(AGGREGATE_FUNCS)}, got {show(text)}",
        )
    return word


def _integer(values: Mapping[str, list[str]], name: str, default: int, maximum: int) -> int:
    given = values.get(name)
    if not given:
        return default
    if not _DIGITS.fullmatch(given[0]) or int(given[0]) > maximum:
        raise bad(name, f"expected an integer from 0 to {maximum}, got {show(given[0])}")
    return int(given[0])
