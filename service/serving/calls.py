"""The estimator half of a prediction on a thread: a prepared matrix to its results."""

from __future__ import annotations

from typing import Any

import numpy as np

from service.estimators.predicting import Prediction, apply_output
from service.serving.inputs import Rows
from service.serving.registry import LoadedModel


def prepare(model: LoadedModel, rows: Rows) -> Any:
    """The request's feature matrix (the checks of `prepare_input`)."""
    return rows.matrix(model)


def apply(estimator: Any, output: str, matrix: Any) -> Prediction:
    # Overflow to inf is an answer (encoded as null), not an error; errstate is per thread.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return apply_output(estimator, matrix, output)
