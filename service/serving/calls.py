"""The two halves of an estimator call on a prediction thread: rows to a feature matrix, and
the matrix to JSON-ready results."""

from __future__ import annotations

from typing import Any

import numpy as np

from service.estimators.predicting import apply_output, prepare_input
from service.estimators.table import Table
from service.schemas.predictions import PredictRequest
from service.serving.registry import LoadedModel


def prepare_rows(model: LoadedModel, body: PredictRequest) -> Any:
    """The request's feature matrix (the checks of `prepare_input`)."""
    if body.data is not None:
        table = Table.from_records(body.data)
    else:
        assert body.columns is not None and body.rows is not None
        table = Table(body.columns, body.rows, "$.rows", "rows")
        table.check_shape()
    return prepare_input(model.estimator, model.features, model.feature_kinds, table)


def apply_json(estimator: Any, output: str, matrix: Any) -> list[Any]:
    # Overflow to inf is an answer (encoded as null), not an error; errstate is per thread.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return apply_output(estimator, matrix, output).to_json()
