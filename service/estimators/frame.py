"""Turning a `Table` into the arrays scikit-learn fits on, with errors that name the cell.

Feature kinds. A feature column is `numeric` or `text`, decided by its first non-missing
value (a string → text, anything else → numeric) unless the caller gives the kinds (e.g. from
a dataset's column types, or a fitted model's). In a numeric column:

- numbers and booleans (as 0/1) are accepted, and so are strings that parse as numbers
  (`"1.5"`): the conversion is numpy's, done in one pass in C;
- anything else (other text, lists, objects) is an InvalidInput naming row and column.

In a text column, strings are kept and numbers are turned into their text (`90210` →
`"90210"`); lists and objects are an InvalidInput. A missing value is None or NaN (or a
missing key in a record). Missing feature values are an InvalidInput naming row and column
unless the estimator accepts NaN (scikit-learn tag `allow_nan`); infinities are always
rejected. Errors list the first `MAX_ERRORS` bad cells, in row order.

Arrays. When every feature is numeric the feature matrix is a float64 array built by one
`np.asarray` over the rows (no per-row Python work when the first row is all-numeric: the
whole table is converted once and sliced). Otherwise it is an object array whose numeric
columns hold floats and whose text columns hold str (or None for missing values).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any, Final, Literal

import numpy as np

from service.domain.errors import FieldError, InvalidInput
from service.estimators.paths import item
from service.estimators.table import Table

FeatureKind = Literal["numeric", "text"]
NUMERIC: Final = "numeric"
TEXT: Final = "text"
MAX_ERRORS: Final = 20

AllowNan = bool | Callable[[], bool]
_NUMBER_TYPES: Final = (int, float, np.number)


class Frame:
    """Column access over one table, converting the all-numeric case only once."""

    def __init__(self, table: Table) -> None:
        table.check_shape()
        self.table = table
        self._positions = {name: i for i, name in enumerate(table.columns)}
        self._numeric: np.ndarray | None = None
        self._numeric_tried = False

    def __len__(self) -> int:
        return len(self.table)

    def position(self, column: str) -> int:
        return self._positions[column]

    def missing(self, columns: Sequence[str]) -> list[str]:
        return [column for column in columns if column not in self._positions]

    def kinds(self, features: Sequence[str]) -> dict[str, FeatureKind]:
        """Each feature's kind, from its first non-missing value (numeric when none)."""
        kinds: dict[str, FeatureKind] = {}
        for name in features:
            position = self._positions[name]
            kinds[name] = NUMERIC
            for row in self.table.rows:
                value = row[position]
                if not _is_missing(value):
                    kinds[name] = TEXT if isinstance(value, str) else NUMERIC
                    break
        return kinds

    def features(
        self, features: Sequence[str], kinds: Mapping[str, FeatureKind], *, allow_nan: AllowNan
    ) -> np.ndarray:
        """The feature matrix: float64 when every feature is numeric, else object.

        `allow_nan` may be a callable, asked only when a value is missing (it saves reading
        the estimator's tags on the fast path)."""
        numeric = [name for name in features if kinds[name] == NUMERIC]
        if len(numeric) == len(features):
            matrix = self.numeric(features)
            _check_finite(self, matrix, features, allow_nan=allow_nan)
            return matrix
        result = np.empty((len(self.table), len(features)), dtype=object)
        if numeric:
            block = self.numeric(numeric)
            _check_finite(self, block, numeric, allow_nan=allow_nan)
            for j, name in enumerate(numeric):
                result[:, features.index(name)] = block[:, j]
        errors: list[FieldError] = []
        for j, name in enumerate(features):
            if kinds[name] == TEXT:
                result[:, j] = self._text(name, _resolve(allow_nan), errors)
        _raise(errors, "invalid text values")
        return result

    def numeric(self, columns: Sequence[str]) -> np.ndarray:
        """A float64 (rows × columns) array; a cell that is not a number raises InvalidInput."""
        positions = [self._positions[name] for name in columns]
        whole = self._whole_numeric()
        if whole is not None:
            if positions == list(range(len(positions))):
                return whole[:, : len(positions)]
            return whole[:, positions]
        rows = self.table.rows
        try:
            if isinstance(rows, np.ndarray):
                matrix = np.asarray(rows[:, positions], dtype=np.float64)
            else:
                matrix = np.asarray(_select(rows, positions), dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            raise _numeric_errors(self, columns) from None
        return matrix.reshape(len(rows), len(positions))

    def target(self, column: str, *, numeric: bool) -> np.ndarray:
        """The target column: float64 when `numeric`, else class labels (all text or all
        numbers). A missing or ill-typed value raises InvalidInput naming the row."""
        if numeric:
            vector = self.numeric([column])[:, 0]
            bad = np.flatnonzero(~np.isfinite(vector))
            if len(bad):
                raise InvalidInput(
                    "the target has missing or infinite values",
                    [
                        FieldError(self.table.cell(int(i), column), "missing target value")
                        for i in bad[:MAX_ERRORS]
                    ],
                )
            return vector
        values = self._column(column)
        types = set(map(type, values))
        if types <= {str}:
            return np.asarray(values, dtype=object)
        if all(issubclass(t, numbers.Real) for t in types):
            labels = np.asarray(values)
            if labels.dtype.kind == "f" and np.isnan(labels).any():
                raise _label_errors(self, column, values)
            return labels
        raise _label_errors(self, column, values)

    def _column(self, column: str) -> list[Any]:
        position = self._positions[column]
        rows = self.table.rows
        if isinstance(rows, np.ndarray):
            return list(rows[:, position])
        return [row[position] for row in rows]

    def _whole_numeric(self) -> np.ndarray | None:
        """The whole table as float64 when its first row is all-numeric and it converts."""
        if not self._numeric_tried:
            self._numeric_tried = True
            rows = self.table.rows
            if len(rows) and not isinstance(rows, np.ndarray) and _all_numbers(rows[0]):
                try:
                    whole = np.asarray(rows, dtype=np.float64)
                except (ValueError, TypeError, OverflowError):
                    whole = None
                if whole is not None and whole.shape == (len(rows), len(self.table.columns)):
                    self._numeric = whole
        return self._numeric

    def _text(self, name: str, allow_nan: bool, errors: list[FieldError]) -> list[str | None]:
        values = self._column(name)
        out: list[str | None] = []
        for index, value in enumerate(values):
            if isinstance(value, str):
                out.append(value)
            elif _is_missing(value):
                out.append(None)
                if not allow_nan and len(errors) < MAX_ERRORS:
                    errors.append(FieldError(self.table.cell(index, name), "missing value"))
            elif isinstance(value, numbers.Number):
                out.append(str(value))
            else:
                out.append(None)
                if len(errors) < MAX_ERRORS:
                    msg = f"expected text, got {type(value).__name__}"
                    errors.append(FieldError(self.table.cell(index, name), msg))
        return out


def resolve_columns(
    frame: Frame, features: Sequence[str] | None, target: str | None, *, supervised: bool
) -> list[str]:
    """The feature list: `features`, or every column except the target. Checks that the
    target is given when needed, is no feature, and that every named column exists."""
    errors: list[FieldError] = []
    if supervised and not target:
        errors.append(FieldError("$.target", "this model type needs a target column"))
    elif supervised and target and frame.missing([target]):
        errors.append(FieldError("$.target", f"column {target!r} is not in the data"))
    if features is None:
        chosen = [c for c in frame.table.columns if c != target]
    else:
        chosen = list(features)
        for index, name in enumerate(chosen):
            loc = item("$.features", index)
            if name == target:
                errors.append(FieldError(loc, f"{name!r} is the target; it cannot be a feature"))
            elif name in chosen[:index]:
                errors.append(FieldError(loc, f"{name!r} is listed twice"))
            elif frame.missing([name]):
                errors.append(FieldError(loc, f"column {name!r} is not in the data"))
    if not chosen and not errors:
        errors.append(FieldError("$.features", "no feature columns"))
    _raise(errors, "invalid features or target")
    return chosen


def _select(rows: Sequence[Sequence[Any]], positions: list[int]) -> Sequence[Sequence[Any]]:
    if len(rows) and positions == list(range(len(rows[0]))):
        return rows
    if len(positions) == 1:
        position = positions[0]
        return [(row[position],) for row in rows]
    return list(map(itemgetter(*positions), rows))


def _all_numbers(row: Sequence[Any]) -> bool:
    return all(isinstance(value, _NUMBER_TYPES) for value in row)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_numeric_cell(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)  # an integer of 309+ digits has no float
        except OverflowError:
            return False
        return True
    if value is None or isinstance(value, _NUMBER_TYPES):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _numeric_errors(frame: Frame, columns: Sequence[str]) -> InvalidInput:
    errors: list[FieldError] = []
    positions = [(name, frame.position(name)) for name in columns]
    for index, row in enumerate(frame.table.rows):
        for name, position in positions:
            value = row[position]
            if not _is_numeric_cell(value):
                shown = repr(value) if isinstance(value, str) else type(value).__name__
                msg = f"expected a number, got {shown}"
                errors.append(FieldError(frame.table.cell(index, name), msg))
                if len(errors) >= MAX_ERRORS:
                    return InvalidInput("invalid numeric values", errors)
    return InvalidInput("invalid numeric values", errors)


def _check_finite(
    frame: Frame, matrix: np.ndarray, columns: Sequence[str], *, allow_nan: AllowNan
) -> None:
    if matrix.size == 0 or bool(np.isfinite(matrix).all()):
        return
    bad = np.isinf(matrix) if _resolve(allow_nan) else ~np.isfinite(matrix)
    errors = []
    for row, col in np.argwhere(bad)[:MAX_ERRORS]:
        value = matrix[row, col]
        msg = "not a finite number" if np.isinf(value) else "missing value"
        if msg == "missing value":
            msg += " (this model type does not accept missing values)"
        errors.append(FieldError(frame.table.cell(int(row), columns[col]), msg))
    _raise(errors, "invalid feature values")


def _label_errors(frame: Frame, column: str, values: list[Any]) -> InvalidInput:
    """Missing labels, labels that are neither text nor numbers, and labels of the minority
    kind (text among numbers, or numbers among text)."""
    texts = sum(isinstance(value, str) for value in values)
    numbers_ = sum(isinstance(value, numbers.Real) and not _is_missing(value) for value in values)
    majority: type = str if texts >= numbers_ else numbers.Real
    errors = []
    for index, value in enumerate(values):
        if _is_missing(value):
            msg = "missing target value"
        elif not isinstance(value, str | numbers.Real):
            msg = f"expected a class label (text or number), got {type(value).__name__}"
        elif isinstance(value, majority):
            continue
        else:
            msg = "class labels must be all text or all numbers"
        errors.append(FieldError(frame.table.cell(index, column), msg))
        if len(errors) >= MAX_ERRORS:
            break
    return InvalidInput("invalid target values", errors)


def _resolve(allow_nan: AllowNan) -> bool:
    return allow_nan if isinstance(allow_nan, bool) else allow_nan()


def _raise(errors: list[FieldError], detail: str) -> None:
    if errors:
        raise InvalidInput(detail, errors)
