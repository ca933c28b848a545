"""A models plugin for tests that need a prediction to hold its thread: `test.HeldRegressor`
predicts the training target's mean, but while `HOLD` is set in the predicting process its
predictions wait until `RELEASE` is set.

Fits run in the worker's child process, where `HOLD` is never set, so training is not held.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from service.estimators.catalogue import Catalogue
from service.estimators.describe import describe_estimator

NAME = "test.HeldRegressor"
WAIT_SECONDS = 60.0
HOLD = threading.Event()
RELEASE = threading.Event()
running = 0  # predictions inside `predict` right now


class HeldRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Predicts the training target's mean, held while the test says so."""

    def fit(self, X: Any, y: Any) -> HeldRegressor:
        X, y = validate_data(self, X, y)
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X: Any) -> np.ndarray:
        global running
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        running += 1
        try:
            if HOLD.is_set():
                assert RELEASE.wait(WAIT_SECONDS), "the test never released the prediction"
        finally:
            running -= 1
        return np.full(X.shape[0], self.mean_)


def build(settings: dict[str, Any]) -> HeldRegressor:
    return HeldRegressor(**settings)


def register(catalogue: Catalogue) -> None:
    catalogue.add(describe_estimator(HeldRegressor, name=NAME), build)
