"""The query language of list endpoints: `where`/`select`/`order_by`/... → parameterized SQL.

Pure Python with no HTTP or database imports: `parse_query` turns query parameters into a
`Query` (syntax only), `compile_query` checks it against a `Source` (the trusted table and its
typed columns) and returns SQL with `$n` bind parameters for asyncpg. Both raise
`service.domain.errors.BadRequest` naming the parameter at fault (`where[2]`, `limit`, ...).
"""

from service.query.compile import Compiled, compile_query, compile_where, escape_like
from service.query.model import AGGREGATE_FUNCS, Condition, Operator, Query
from service.query.parse import (
    GROUPING_PARAMS,
    QUERY_PARAMS,
    group_params,
    parse_condition,
    parse_conditions,
    parse_query,
)
from service.query.types import Column, ColumnType, Source, quote_ident

__all__ = [
    "AGGREGATE_FUNCS",
    "GROUPING_PARAMS",
    "QUERY_PARAMS",
    "Column",
    "ColumnType",
    "Compiled",
    "Condition",
    "Operator",
    "Query",
    "Source",
    "compile_query",
    "compile_where",
    "escape_like",
    "group_params",
    "parse_condition",
    "parse_conditions",
    "parse_query",
    "quote_ident",
]
