"""A models plugin for tests of shadow traffic: `test.FaultyRegressor` predicts the training
target's mean, and while `ARMED` is set in the predicting process a version trained on a
negative mean raises, and one trained on a mean of 1000 or more waits until `RELEASE` is set.

Which version misbehaves is thus chosen by its training rows; fits and their held-out scores run
in the worker's child process, where `ARMED` is never set.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from service.estimators.catalogue import Catalogue
from service.estimators.describe import describe_estimator

NAME = "test.FaultyRegressor"
WAIT_SECONDS = 60.0
ARMED = threading.Event()
RELEASE = threading.Event()
RAISES = -1.0  # train on this target to get a version that raises
HOLDS = 1000.0  # ... and on this one for a version that holds its thread
held = 0  # predictions waiting for RELEASE right now


class FaultyRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Predicts the training target's mean; misbehaves by its mean while the test says so."""

    def fit(self, X: Any, y: Any) -> FaultyRegressor:
        X, y = validate_data(self, X, y)
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X: Any) -> np.ndarray:
        global held
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        if ARMED.is_set() and self.mean_ < 0:
            raise RuntimeError("this version fails on purpose")
        if ARMED.is_set() and self.mean_ >= HOLDS:
            held += 1
            try:
                assert RELEASE.wait(WAIT_SECONDS), "the test never released the prediction"
            finally:
                held -= 1
        return np.full(X.shape[0], self.mean_)


def build(settings: dict[str, Any]) -> FaultyRegressor:
    return FaultyRegressor(**settings)


def register(catalogue: Catalogue) -> None:
    catalogue.add(describe_estimator(FaultyRegressor, name=NAME), build)
