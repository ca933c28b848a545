"""The parsed query: syntax only, with column names and values still as the user wrote them.

A `Query` is a plain msgspec Struct so it can travel (in a job payload, for example) and be
compiled later against a `Source`; `compile_query` validates it again, so a Query built by hand
or decoded from elsewhere is exactly as safe as one from `parse_query`.
"""

from __future__ import annotations

import enum
from typing import Literal

import msgspec


class Operator(enum.Enum):
    """The operators of a where term; the value is the canonical spelling."""

    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    LIKE = "LIKE"
    NOTLIKE = "NOTLIKE"
    ILIKE = "ILIKE"
    NOTILIKE = "NOTILIKE"
    CONTAINS = "CONTAINS"
    STARTSWITH = "STARTSWITH"
    ENDSWITH = "ENDSWITH"
    IN = "IN"
    IS_NULL = "IS NULL"
    IS_NOT_NULL = "IS NOT NULL"


NULL_TESTS = frozenset({Operator.IS_NULL, Operator.IS_NOT_NULL})

AGGREGATE_FUNCS = ("count", "sum", "avg", "min", "max", "stddev")


class Condition(msgspec.Struct, frozen=True):
    """One where term: `column op value`.

    `values` holds the value texts as written (unquoted): none for IS [NOT] NULL, one or more
    for IN, exactly one otherwise. They are typed only when compiled against a column.
    """

    column: str
    op: Operator
    values: tuple[str, ...] = ()


class Query(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A parsed list query; see `parse_query` for the parameters each field comes from.

    `aggregates` holds `(column, func)` pairs whose result column is `{column}_{func}`;
    `order_by` holds `(name, direction)` pairs where a name is a column or, when grouping,
    an aggregate result.
    """

    where: list[Condition] = msgspec.field(default_factory=list)
    where_boolean: Literal["AND", "OR"] = "AND"
    select: list[str] = msgspec.field(default_factory=list)
    order_by: list[tuple[str, Literal["asc", "desc"]]] = msgspec.field(default_factory=list)
    limit: int = 100
    offset: int = 0
    group_by: list[str] = msgspec.field(default_factory=list)
    aggregates: list[tuple[str, str]] = msgspec.field(default_factory=list)

    @property
    def grouped(self) -> bool:
        """True when the result has one row per group (or one row of aggregates)."""
        return bool(self.group_by or self.aggregates)
