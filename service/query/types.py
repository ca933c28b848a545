"""What a query runs against: typed columns of one trusted SQL source.

Everything in this module is trusted configuration written by the service's own code (the
`models` table, a dataset's column list), never user input; user input only ever selects among
the columns declared here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


class ColumnType(enum.Enum):
    """How values of a column are parsed, compared and aggregated."""

    TEXT = "text"
    INTEGER = "integer"  # bound as bigint: any int64 value
    FLOAT = "float"  # bound as double precision; only finite values
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"  # bound as timestamptz; RFC 3339 in queries
    UUID = "uuid"
    TEXT_ARRAY = "text_array"  # text[], e.g. tags: CONTAINS and IS [NOT] NULL only
    JSON = "json"  # selectable; filterable by IS [NOT] NULL only; not orderable or groupable


NUMERIC_TYPES = frozenset({ColumnType.INTEGER, ColumnType.FLOAT})

# The PostgreSQL type each bind parameter is cast to. Explicit casts fix the type asyncpg encodes
# for, whatever the column's own type is (an `int4` column still compares with any int64 value).
PARAM_CAST: Mapping[ColumnType, str] = {
    ColumnType.TEXT: "text",
    ColumnType.INTEGER: "bigint",
    ColumnType.FLOAT: "double precision",
    ColumnType.BOOLEAN: "boolean",
    ColumnType.TIMESTAMP: "timestamptz",
    ColumnType.UUID: "uuid",
    ColumnType.TEXT_ARRAY: "text",  # the element type: CONTAINS binds one element
}


def quote_ident(name: str) -> str:
    """`name` as a PostgreSQL quoted identifier (double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Column:
    """A column users may name. `sql` is a trusted SQL expression; default: `name` quoted.

    `name` is what users write and the name of the output column. A custom `sql` is wrapped in
    parentheses wherever it is used, so any expression keeps its meaning next to an operator.
    """

    name: str
    type: ColumnType
    sql: str | None = None

    def __post_init__(self) -> None:
        if not self.name or "\x00" in self.name:
            raise ValueError(f"invalid column name {self.name!r}")

    @property
    def expr(self) -> str:
        """The SQL for this column's value."""
        return quote_ident(self.name) if self.sql is None else f"({self.sql})"


@dataclass(frozen=True)
class Source:
    """The trusted FROM clause a query reads, and the columns users may name.

    `from_sql` and `base_where` are trusted SQL (e.g. `models m`, `m.deleted_at IS NULL`);
    `base_args` are the parameters of `base_where`, numbered `$1..$k` before any user value.
    `tiebreak` names columns appended to every ORDER BY so that pages are stable; it should
    identify a row (e.g. the primary key).
    """

    from_sql: str
    columns: Sequence[Column]
    tiebreak: Sequence[str] = ()
    base_where: str | None = None
    base_args: Sequence[object] = ()
    _by_name: Mapping[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {c.name: c for c in self.columns}
        if not by_name:
            raise ValueError("a Source needs at least one column")
        if len(by_name) != len(self.columns):
            raise ValueError("column names of a Source must be unique")
        for name in self.tiebreak:
            column = by_name.get(name)
            if column is None or column.type is ColumnType.JSON:
                raise ValueError(f"tiebreak column {name!r} is not an orderable column")
        object.__setattr__(self, "_by_name", by_name)

    def column(self, name: str) -> Column | None:
        """The column called `name` (exact, case-sensitive match), or None."""
        return self._by_name.get(name)
