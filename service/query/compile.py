"""`Query` + `Source` → parameterized SQL for asyncpg.

How the SQL text stays safe: it is assembled only from the Source's trusted SQL, quoted column
names taken from the Source (never from the query), fixed keywords chosen through dictionaries,
`$n` placeholders, and LIMIT/OFFSET integers checked to be `int`s. Every user value travels as a
bind parameter with an explicit cast, after `values.convert` made sure PostgreSQL accepts it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service.query.limits import (
    INT64_MAX,
    MAX_IN_ITEMS,
    MAX_LIST_ENTRIES,
    MAX_WHERE_TERMS,
    bad,
    show,
)
from service.query.model import AGGREGATE_FUNCS, NULL_TESTS, Condition, Operator, Query
from service.query.types import NUMERIC_TYPES, PARAM_CAST, Column, ColumnType, Source, quote_ident
from service.query.values import convert


@dataclass(frozen=True)
class Compiled:
    """SQL ready for `conn.fetch(sql, *args)` and `conn.fetchval(count_sql, *args)`.

    `columns` names the output columns in order and `column_types` gives their types. Read row
    values by position: PostgreSQL truncates output names longer than 63 bytes. sum, avg and
    stddev are computed in `numeric`, so no data can overflow them; asyncpg returns
    `decimal.Decimal` for them (encode as JSON numbers). `count_sql` counts the rows of the whole
    filtered (and grouped) result, ignoring limit and offset.
    """

    sql: str
    count_sql: str
    args: list[object]
    columns: list[str]
    column_types: list[ColumnType]


_COMPARISONS = {
    Operator.EQ: "=",
    Operator.NE: "<>",
    Operator.LT: "<",
    Operator.LE: "<=",
    Operator.GT: ">",
    Operator.GE: ">=",
}
_LIKES = {
    Operator.LIKE: "LIKE",
    Operator.NOTLIKE: "NOT LIKE",
    Operator.ILIKE: "ILIKE",
    Operator.NOTILIKE: "NOT ILIKE",
}
_AFFIXES = {  # (prefix, suffix) around the escaped value
    Operator.CONTAINS: ("%", "%"),
    Operator.STARTSWITH: ("", "%"),
    Operator.ENDSWITH: ("%", ""),
}
_SCALAR_OPS = frozenset(_COMPARISONS) | {Operator.IN} | NULL_TESTS
_OPERATORS: Mapping[ColumnType, frozenset[Operator]] = {
    ColumnType.TEXT: _SCALAR_OPS | frozenset(_LIKES) | frozenset(_AFFIXES),
    ColumnType.INTEGER: _SCALAR_OPS,
    ColumnType.FLOAT: _SCALAR_OPS,
    ColumnType.BOOLEAN: _SCALAR_OPS,
    ColumnType.TIMESTAMP: _SCALAR_OPS,
    ColumnType.UUID: _SCALAR_OPS,
    ColumnType.TEXT_ARRAY: NULL_TESTS | {Operator.CONTAINS},
    ColumnType.JSON: NULL_TESTS,
}
_JOINERS = {"AND": " AND ", "OR": " OR "}
_DIRECTIONS = {"asc": "ASC", "desc": "DESC"}
# E'' spells one backslash whatever standard_conforming_strings is set to.
_ESCAPE = "ESCAPE E'\\\\'"


class _Args:
    """Bind parameters, numbered after the Source's own."""

    def __init__(self, base: Sequence[object]) -> None:
        self.values = list(base)

    def add(self, value: object, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


def compile_where(
    conditions: Sequence[Condition], where_boolean: str, source: Source
) -> tuple[str, list[object]]:
    """The WHERE condition (without the keyword; "" for none) and all args, base args first.

    Also usable on its own, e.g. for `DELETE FROM ... WHERE`; errors name `where[i]`.
    """
    if len(conditions) > MAX_WHERE_TERMS:
        raise bad("where", f"more than {MAX_WHERE_TERMS} terms")
    joiner = _JOINERS.get(where_boolean)
    if joiner is None:
        raise bad("where_boolean", f"expected AND or OR, got {show(str(where_boolean))}")
    args = _Args(source.base_args)
    parts = [f"({source.base_where})"] if source.base_where else []
    terms = [_condition(c, f"where[{i}]", source, args) for i, c in enumerate(conditions)]
    if terms:
        parts.append("(" + joiner.join(terms) + ")")
    return " AND ".join(parts), args.values


def compile_query(query: Query, source: Source) -> Compiled:
    """Compile `query` against `source`; raises BadRequest naming the offending parameter."""
    for name in ("select", "order_by", "group_by", "aggregates"):
        if len(getattr(query, name)) > MAX_LIST_ENTRIES:
            raise bad(name, f"more than {MAX_LIST_ENTRIES} entries")
    limit, offset = _count(query.limit, "limit"), _count(query.offset, "offset")
    condition, args = compile_where(query.where, query.where_boolean, source)
    where = f" WHERE {condition}" if condition else ""
    shape = _grouped(query, source) if query.grouped else _plain(query, source)
    order = _order_by(query, shape, source)
    select = ", ".join(f"{sql} AS {quote_ident(name)}" for name, sql, _ in shape.outputs)
    body = f"FROM {source.from_sql}{where}{shape.group_by}"
    sql = f"SELECT {select} {body}{order} LIMIT {limit} OFFSET {offset}"
    if not query.grouped:
        count_sql = f"SELECT count(*) {body}"
    else:
        # One row per group, or exactly one row of aggregates when there are no groups; the
        # inner query still uses every $n, as asyncpg insists all args are consumed.
        inner = "1" if query.group_by else "count(*)"
        count_sql = f"SELECT count(*) FROM (SELECT {inner} {body}) AS grouped"
    return Compiled(
        sql=sql,
        count_sql=count_sql,
        args=args,
        columns=[name for name, _, _ in shape.outputs],
        column_types=[type_ for _, _, type_ in shape.outputs],
    )


@dataclass(frozen=True)
class _Shape:
    outputs: list[tuple[str, str, ColumnType]]  # (name, sql, type)
    orderable: dict[str, str]  # name → sql
    tiebreak: list[str]
    group_by: str  # " GROUP BY ..." or ""
    hint: str  # why a name is not orderable


def _plain(query: Query, source: Source) -> _Shape:
    names = query.select or [c.name for c in source.columns]
    outputs = []
    for i, name in enumerate(names):
        column = _column(source, name, f"select[{i}]")
        outputs.append((column.name, column.expr, column.type))
    _unique([name for name, _, _ in outputs], "select", "selected twice")
    orderable = {c.name: c.expr for c in source.columns if c.type is not ColumnType.JSON}
    return _Shape(outputs, orderable, list(source.tiebreak), "", "JSON columns cannot be ordered")


def _grouped(query: Query, source: Source) -> _Shape:
    groups = [_column(source, name, f"group_by[{i}]") for i, name in enumerate(query.group_by)]
    for i, column in enumerate(groups):
        if column.type is ColumnType.JSON:
            raise bad(f"group_by[{i}]", f"JSON column {show(column.name)} cannot be grouped")
    _unique(query.group_by, "group_by", "grouped twice")
    by_name = {c.name: c for c in groups}
    outputs = []
    for i, name in enumerate(query.select or query.group_by):
        if name not in by_name:
            _column(source, name, f"select[{i}]")  # unknown beats not-grouped as an error
            raise bad(f"select[{i}]", f"{show(name)} is not a group_by column")
        outputs.append((name, by_name[name].expr, by_name[name].type))
    _unique([name for name, _, _ in outputs], "select", "selected twice")
    orderable = {c.name: c.expr for c in groups}
    for i, (name, func) in enumerate(query.aggregates):
        column = _column(source, name, f"aggregate[{i}]")
        sql, type_ = _aggregate(column, func, i)
        result = f"{name}_{func}"
        if source.column(result) is not None:
            # Also a guard for ORDER BY: a bare output name would shadow that column there.
            raise bad(f"aggregate[{i}]", f"result {show(result)} clashes with a column name")
        if result in orderable:
            raise bad(f"aggregate[{i}]", f"{show(result)} aggregated twice")
        outputs.append((result, sql, type_))
        orderable[result] = sql
    group_by = ", ".join(c.expr for c in groups)
    return _Shape(
        outputs,
        orderable,
        list(query.group_by),
        f" GROUP BY {group_by}" if group_by else "",
        "when grouping, order by group_by columns or aggregate results",
    )


def _aggregate(column: Column, func: str, i: int) -> tuple[str, ColumnType]:
    """SQL and output type of `func` over `column` (aggregate number `i`)."""
    if func not in AGGREGATE_FUNCS:
        raise bad(f"aggregate_func[{i}]", f"unknown aggregate function {show(func)}")
    expr, type_ = column.expr, column.type
    if func == "count":
        return f"count({expr})", ColumnType.INTEGER
    if func in ("sum", "avg", "stddev"):
        if type_ not in NUMERIC_TYPES:
            raise bad(f"aggregate[{i}]", f"{func} needs a numeric column, not {type_.value}")
        # numeric never overflows: float8 sum/avg/stddev raise on huge values (1e200²).
        name = "stddev_samp" if func == "stddev" else func
        exact = func == "sum" and type_ is ColumnType.INTEGER
        return f"{name}({expr}::numeric)", ColumnType.INTEGER if exact else ColumnType.FLOAT
    if type_ is ColumnType.JSON:
        raise bad(f"aggregate[{i}]", f"{func} is not defined for JSON columns")
    if type_ is ColumnType.BOOLEAN:  # PostgreSQL has no min/max(boolean)
        return f"{'bool_and' if func == 'min' else 'bool_or'}({expr})", type_
    if type_ is ColumnType.UUID:  # ... nor min/max(uuid); hex text in "C" order sorts alike
        return f'{func}({expr}::text COLLATE "C")::uuid', type_
    return f"{func}({expr})", type_


def _order_by(query: Query, shape: _Shape, source: Source) -> str:
    keys, seen = [], set()
    for i, (name, direction) in enumerate(query.order_by):
        sql = shape.orderable.get(name)
        if sql is None:
            _column(source, name, f"order_by[{i}]")  # an unknown name: say so, list columns
            raise bad(f"order_by[{i}]", f"cannot order by {show(name)}: {shape.hint}")
        if direction not in _DIRECTIONS:
            raise bad(f"order_by_sort[{i}]", f"expected asc or desc, got {show(str(direction))}")
        if name in seen:
            raise bad(f"order_by[{i}]", f"{show(name)} ordered twice")
        seen.add(name)
        keys.append(f"{sql} {_DIRECTIONS[direction]}")
    # Stable pages: equal keys fall back to the tiebreak columns.
    keys += [f"{shape.orderable[name]} ASC" for name in shape.tiebreak if name not in seen]
    return f" ORDER BY {', '.join(keys)}" if keys else ""


def _condition(condition: Condition, loc: str, source: Source, args: _Args) -> str:
    column = _column(source, condition.column, loc)
    op, values = condition.op, condition.values
    if op not in _OPERATORS[column.type]:
        raise bad(
            loc, f"{op.value} does not apply to {column.type.value} column {show(column.name)}"
        )
    arity_ok = (
        not values
        if op in NULL_TESTS
        else 1 <= len(values) <= MAX_IN_ITEMS
        if op is Operator.IN
        else len(values) == 1
    )
    if not arity_ok:
        raise bad(loc, f"wrong number of values ({len(values)}) for {op.value}")
    expr = column.expr
    if op in NULL_TESTS:
        return f"{expr} {op.value}"
    typed = [convert(loc, column.name, column.type, value) for value in values]
    cast = PARAM_CAST[column.type]
    if op is Operator.IN:
        return f"{expr} = ANY({args.add(typed, cast + '[]')})"
    if op in _COMPARISONS:
        return f"{expr} {_COMPARISONS[op]} {args.add(typed[0], cast)}"
    text = values[0]
    if op in _LIKES:
        if (len(text) - len(text.rstrip("\\"))) % 2:  # PostgreSQL raises on a lone trailing \
            raise bad(loc, "a LIKE pattern cannot end with a single backslash (escape it)")
        return f"{expr} {_LIKES[op]} {args.add(text, 'text')}"
    if column.type is ColumnType.TEXT_ARRAY:
        # `@>` rather than `= ANY(...)`, so a GIN index on the array column can answer it.
        return f"{expr} @> ARRAY[{args.add(text, 'text')}]"
    prefix, suffix = _AFFIXES[op]
    pattern = prefix + escape_like(text) + suffix
    return f"{expr} LIKE {args.add(pattern, 'text')} {_ESCAPE}"


def escape_like(text: str) -> str:
    """`text` as a LIKE pattern that matches only itself (backslash is the escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _column(source: Source, name: str, loc: str) -> Column:
    column = source.column(name)
    if column is None:
        known = [c.name for c in source.columns]
        listed = ", ".join(known[:20]) + (", …" if len(known) > 20 else "")
        raise bad(loc, f"unknown column {show(name)}; known columns: {listed}")
    return column


def _unique(names: Sequence[str], param: str, msg: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise bad(f"{param}[{i}]", f"{show(name)} {msg}")
        seen.add(name)


def _count(value: int, name: str) -> int:
    # These two are written into the SQL text (so that count_sql can share args): only ints.
    if type(value) is not int or not 0 <= value <= INT64_MAX:
        raise bad(name, f"expected an integer from 0 to {INT64_MAX}")
    return value
