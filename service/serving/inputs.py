"""The rows of one prediction request, in whichever form they came, and how each becomes the
model's feature matrix.

Every form has `size` (its row count, known before any work, so the row limit is checked
first) and `matrix(model)`, called on a prediction thread once the version is known. A form
whose cells are all finite numbers, for a model whose features are all numeric, goes straight
into one float64 array (`np.fromiter` over the cells, no per-row objects); anything else takes
the checked path of `service.estimators.predicting.prepare_input`, which names the bad cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any, Protocol

import numpy as np

from service.estimators.frame import TEXT
from service.estimators.predicting import prepare_input
from service.estimators.table import Table
from service.serving.registry import LoadedModel


class Rows(Protocol):
    """One request's rows; `field` locates them in error messages."""

    @property
    def size(self) -> int: ...

    @property
    def field(self) -> str: ...

    def matrix(self, model: LoadedModel) -> Any: ...


@dataclass(frozen=True, slots=True)
class Records:
    """`{"data": [{"feature": value, ...}, ...]}`."""

    data: Sequence[dict[str, Any]]
    field: str = "$.data"

    @property
    def size(self) -> int:
        return len(self.data)

    def matrix(self, model: LoadedModel) -> Any:
        if all_numeric(model):
            fast = _records_matrix(self.data, model.features)
            if fast is not None:
                return fast
        table = Table.from_records(self.data, self.field)
        return prepare_input(model.estimator, model.features, model.feature_kinds, table)


@dataclass(frozen=True, slots=True)
class Columns:
    """`{"columns": [...], "rows": [[...], ...]}`."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    field: str = "$.rows"

    @property
    def size(self) -> int:
        return len(self.rows)

    def matrix(self, model: LoadedModel) -> Any:
        if all_numeric(model) and list(self.columns) == model.features:
            fast = _rows_matrix(self.rows, len(self.columns))
            if fast is not None:
                return fast
        table = Table(self.columns, self.rows, self.field, "rows")
        table.check_shape()
        return prepare_input(model.estimator, model.features, model.feature_kinds, table)


@dataclass(frozen=True, slots=True)
class Matrix:
    """Rows already in the model's feature order: a 2-D array (one column per feature),
    numeric or of Python objects (text features)."""

    values: np.ndarray
    field: str = "$.inputs"

    @property
    def size(self) -> int:
        return int(self.values.shape[0])

    def matrix(self, model: LoadedModel) -> Any:
        if all_numeric(model) and self.values.dtype.kind in "fiub":
            fast = np.asarray(self.values, dtype=np.float64)
            if np.isfinite(fast).all():
                return fast
        table = Table(model.features, self.values.tolist(), self.field, "rows")
        table.check_shape()
        return prepare_input(model.estimator, model.features, model.feature_kinds, table)


def all_numeric(model: LoadedModel) -> bool:
    return TEXT not in model.feature_kinds.values()


def _records_matrix(records: Sequence[dict[str, Any]], features: list[str]) -> Any:
    """The float64 matrix of the records' features, or None when a record lacks one or a
    value is not a finite number (the checked path then says which)."""
    if not features:
        return None
    pick = itemgetter(*features)
    cells = map(pick, records) if len(features) == 1 else chain.from_iterable(map(pick, records))
    return _finite(cells, len(records), len(features))


def _rows_matrix(rows: Sequence[Sequence[Any]], width: int) -> Any:
    if not width or set(map(len, rows)) - {width}:
        return None
    return _finite(chain.from_iterable(rows), len(rows), width)


def _finite(cells: Any, height: int, width: int) -> Any:
    try:
        matrix = np.fromiter(cells, np.float64, height * width).reshape(height, width)
    except (KeyError, ValueError, TypeError, OverflowError):
        return None
    return matrix if np.isfinite(matrix).all() else None
