"""Prediction with a fitted pipeline: `predict(estimator, features, feature_kinds, X, output)`.

`X` is a `Table` (columns matched by name; extra columns are ignored, missing ones raise
`InvalidInput` naming them), or rows / a 2-D numpy array whose columns are already in
`features` order. Cells are checked as in training (`frame.py`): a bad cell or a missing
value the model cannot take raises `InvalidInput` naming row and column. When every feature is
numeric the input becomes one float64 array and goes straight to the model's method, so a
single-row prediction costs a few microseconds beyond the estimator's own call.

`output` is one of `predict`, `predict_proba`, `decision_function`, `transform`; one the
fitted model does not offer (e.g. SVC's `predict_proba` without `probability: true`) raises
`InvalidInput` on `$.output`. An error scikit-learn raises on the input (wrong values for
the model, ...) raises `InvalidInput` with its message.

The result is a `Prediction`: a numpy array (sparse results are densified) plus, for
`predict_proba` and a per-class `decision_function`, the class labels of its columns.
`Prediction.to_json()` gives the API's form: a scalar per row for `predict`, an object keyed
by class per row for `predict_proba`, a list of numbers per row for `transform`.

`predict` is `check_output`, then `prepare_input` (validation, the per-request part), then
`apply_output` (the model call). A server may prepare several requests' matrices, stack them
(`np.vstack`) and make one `apply_output` call: the result rows are the stacked rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from service.domain.errors import FieldError, InvalidInput
from service.estimators.fitting import accepts_nan
from service.estimators.frame import TEXT, FeatureKind, Frame
from service.estimators.model_type import OUTPUTS
from service.estimators.pipeline import final_estimator
from service.estimators.table import Table

OUTPUT = "$.output"


@dataclass(frozen=True, slots=True)
class Prediction:
    """The raw result of one output method; `classes` label the columns when per class."""

    output: str
    values: np.ndarray
    classes: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, rows: slice) -> Prediction:
        """The results of a slice of the rows (a view, not a copy)."""
        return Prediction(self.output, self.values[rows], self.classes)

    def to_json(self) -> list[Any]:
        """One JSON value per row (class-keyed objects when `classes` is set)."""
        rows: list[Any] = self.values.tolist()
        if self.classes is None or self.values.ndim != 2:
            return rows
        keys = [class_key(label) for label in self.classes]
        return [dict(zip(keys, row, strict=True)) for row in rows]


def class_key(label: Any) -> str:
    """A class label as a JSON object key: text as is, anything else as its JSON text."""
    return label if isinstance(label, str) else json.dumps(label)


def offered_outputs(estimator: Pipeline) -> list[str]:
    """The outputs this fitted model offers."""
    model = final_estimator(estimator)
    return [name for name in OUTPUTS if hasattr(model, name)]


def predict(
    estimator: Pipeline,
    features: Sequence[str],
    feature_kinds: Mapping[str, FeatureKind],
    X: Table | np.ndarray | Sequence[Sequence[Any]],
    output: str = "predict",
) -> Prediction:
    """Apply `output` of the fitted pipeline to the rows of X; see the module docstring."""
    check_output(estimator, output)
    table = X if isinstance(X, Table) else Table(list(features), X)
    if not len(table):
        return Prediction(output, np.empty((0,)), None)
    matrix = prepare_input(estimator, features, feature_kinds, table)
    return apply_output(estimator, matrix, output, table.path)


def check_output(estimator: Pipeline, output: str) -> None:
    """Raise InvalidInput on `$.output` unless the fitted model offers `output`."""
    model = final_estimator(estimator)
    if output not in OUTPUTS or getattr(model, output, None) is None:
        offered = ", ".join(offered_outputs(estimator)) or "nothing"
        msg = f"this model does not offer {output!r} (it offers: {offered})"
        raise InvalidInput("unavailable output", [FieldError(OUTPUT, msg)])


def prepare_input(
    estimator: Pipeline,
    features: Sequence[str],
    feature_kinds: Mapping[str, FeatureKind],
    table: Table,
) -> Any:
    """The checked feature matrix of `table` (the part of `predict` that validates input).

    Matrices of several requests can be stacked and passed to `apply_output` in one call."""
    matrix = _fast_numeric(table, features, feature_kinds)
    if matrix is None:
        matrix = _checked_matrix(final_estimator(estimator), table, features, feature_kinds)
    return matrix


def apply_output(estimator: Pipeline, matrix: Any, output: str, path: str = "$") -> Prediction:
    """Run the pipeline's steps and `output` on a prepared matrix."""
    model = final_estimator(estimator)
    try:
        for _, step in estimator.steps[:-1]:
            matrix = step.transform(matrix)
        values = getattr(model, output)(matrix)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("the model rejected the input", [FieldError(path, str(exc))]) from exc
    return _prediction(model, output, values)


def _fast_numeric(
    table: Table, features: Sequence[str], feature_kinds: Mapping[str, FeatureKind]
) -> np.ndarray | None:
    """The float64 matrix when the columns are exactly the numeric features and all finite."""
    if list(table.columns) != list(features) or TEXT in feature_kinds.values():
        return None
    try:
        matrix = np.asarray(table.rows, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        return None
    if matrix.ndim != 2 or matrix.shape[1] != len(features) or not np.isfinite(matrix).all():
        return None
    return matrix


def _checked_matrix(
    model: Any, table: Table, features: Sequence[str], feature_kinds: Mapping[str, FeatureKind]
) -> Any:
    frame = Frame(table)
    missing = frame.missing(features)
    if missing:
        raise InvalidInput(
            "missing feature columns",
            [FieldError(table.path, f"missing feature column {name!r}") for name in missing],
        )
    return frame.features(features, feature_kinds, allow_nan=lambda: accepts_nan(model))


def _prediction(model: Any, output: str, values: Any) -> Prediction:
    if hasattr(values, "toarray"):  # scipy sparse
        values = values.toarray()
    array = np.asarray(values)
    classes = None
    if output in ("predict_proba", "decision_function") and array.ndim == 2:
        labels = getattr(model, "classes_", None)
        if labels is not None and len(labels) == array.shape[1]:
            classes = list(np.asarray(labels).tolist())
        elif output == "predict_proba":
            classes = list(range(array.shape[1]))  # mixture components
    return Prediction(output, array, classes)
