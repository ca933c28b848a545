"""An example models plugin: list `tests.estimators.plugin_example` in `[models] plugins`.

It contributes one type, `example.ShiftedMeanRegressor`, a scikit-learn compatible regressor
that predicts the training target's mean plus `shift`. `register` derives the `ModelType`
from the class with `describe_estimator` and registers a factory that builds the estimator
from its JSON settings; the catalogue then checks keys against the schema and values against
the class's `_parameter_constraints`, as for built-in types.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from service.estimators.catalogue import Catalogue
from service.estimators.describe import describe_estimator

NAME = "example.ShiftedMeanRegressor"


class ShiftedMeanRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Predicts the mean of the training target plus a constant shift.

    Parameters
    ----------
    shift : float, default=0.0
        Added to every prediction.
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "shift": [Interval(Real, None, None, closed="neither")],
    }

    def __init__(self, shift: float = 0.0) -> None:
        self.shift = shift

    def fit(self, X: Any, y: Any) -> ShiftedMeanRegressor:
        self._validate_params()
        X, y = validate_data(self, X, y)
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return np.full(X.shape[0], self.mean_ + self.shift)


def build(settings: dict[str, Any]) -> ShiftedMeanRegressor:
    """The factory: settings are the JSON object a model was created with."""
    return ShiftedMeanRegressor(**settings)


def register(catalogue: Catalogue) -> None:
    """The plugin entry point the service calls once at start."""
    model_type = describe_estimator(
        ShiftedMeanRegressor, name=NAME, docs_url="https://example.invalid/shifted-mean"
    )
    catalogue.add(model_type, build)
