"""`Table`: the compact, numpy-friendly form of training and prediction data.

A table is a list of column names plus row-major values: `rows` is a sequence of equal-length
sequences (lists or tuples, as decoded from JSON or read from PostgreSQL) or a 2-D numpy
array. Records (`[{"x": 1, "y": "a"}, ...]`) convert with `Table.from_records`, which builds
one tuple per record in C (`operator.itemgetter`); a record without some column holds None
there.

`path` and `style` only serve error locations: with the records style a cell is
`$.data[3].petal_width`; with the rows style (`{"columns": [...], "rows": [[...]]}`) it is
`$.rows[3][1]`. Row indexes count from 0 in the order given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

import numpy as np

from service.domain.errors import FieldError, InvalidInput
from service.estimators.paths import item, member

Rows = Sequence[Sequence[Any]] | np.ndarray
Style = Literal["records", "rows"]


@dataclass(frozen=True, slots=True)
class Table:
    """Column names and rows; see the module docstring for the error-location fields."""

    columns: Sequence[str]
    rows: Rows
    path: str = "$.rows"
    style: Style = "rows"

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]], path: str = "$.data") -> Table:
        """A table of `records`; columns are every key, in order of first appearance."""
        if not records:
            return cls([], [], path, "records")
        columns = list(records[0])
        width = len(columns)
        if all(len(record) == width for record in records):
            try:
                return cls(columns, _itemgetter_rows(records, columns), path, "records")
            except KeyError:
                pass  # same length, other keys: the general path below
        seen = dict.fromkeys(key for record in records for key in record)
        columns = list(seen)
        rows = [tuple(record.get(column) for column in columns) for record in records]
        return cls(columns, rows, path, "records")

    def __len__(self) -> int:
        return len(self.rows)

    def cell(self, row: int, column: str) -> str:
        """The JSON path of one cell, for a `FieldError`."""
        if self.style == "records":
            return member(item(self.path, row), column)
        return item(item(self.path, row), list(self.columns).index(column))

    def index(self, column: str) -> int:
        return list(self.columns).index(column)

    def concat(self, other: Table) -> Table:
        """This table's rows then `other`'s, aligned by column name (a missing cell is None).

        This is how a non-incremental update is built: the previous version's training rows
        plus the new rows, passed to `fit_model`.
        """
        columns = list(self.columns)
        columns += [c for c in other.columns if c not in set(columns)]
        return Table(columns, [*_aligned(self, columns), *_aligned(other, columns)])

    def check_shape(self) -> None:
        """Raise InvalidInput naming the first row whose length differs from `columns`."""
        width = len(self.columns)
        if isinstance(self.rows, np.ndarray):
            if self.rows.ndim != 2 or self.rows.shape[1] != width:
                msg = f"expected a 2-D array with {width} columns, got shape {self.rows.shape}"
                raise InvalidInput("rows do not match columns", [FieldError(self.path, msg)])
            return
        if set(map(len, self.rows)) <= {width}:  # one C-level pass
            return
        for index, row in enumerate(self.rows):
            if len(row) != width:
                msg = f"has {len(row)} values; expected {width} (one per column)"
                error = FieldError(item(self.path, index), msg)
                raise InvalidInput("a row does not match the columns", [error])


def _itemgetter_rows(records: Sequence[Mapping[str, Any]], columns: list[str]) -> list[Any]:
    if not columns:
        return [() for _ in records]
    if len(columns) == 1:
        key = columns[0]
        return [(record[key],) for record in records]
    return list(map(itemgetter(*columns), records))


def _aligned(table: Table, columns: list[str]) -> list[tuple[Any, ...]]:
    positions = {name: i for i, name in enumerate(table.columns)}
    picks = [positions.get(name) for name in columns]
    return [tuple(None if p is None else row[p] for p in picks) for row in table.rows]
