"""A models plugin for tests that need a fit to wait: `test.GatedRegressor` fits only when its
gate opens, i.e. when the file named by its `gate` setting appears; each fit consumes it.

The fit runs in the worker's child process, so a file is the simplest signal both can see.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from service.estimators.catalogue import Catalogue
from service.estimators.describe import describe_estimator

NAME = "test.GatedRegressor"
WAIT_SECONDS = 60.0


class GatedRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Predicts the training target's mean, once the gate has opened.

    Parameters
    ----------
    gate : str, default=""
        Path of the file whose appearance lets a fit go on.
    """

    _parameter_constraints: dict[str, list[Any]] = {"gate": [str]}

    def __init__(self, gate: str = "") -> None:
        self.gate = gate

    def fit(self, X: Any, y: Any) -> GatedRegressor:
        X, y = validate_data(self, X, y)
        gate, deadline = Path(self.gate), time.monotonic() + WAIT_SECONDS
        while not gate.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the gate {gate} never opened")
            time.sleep(0.01)
        gate.unlink()
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return np.full(X.shape[0], self.mean_)


def build(settings: dict[str, Any]) -> GatedRegressor:
    return GatedRegressor(**settings)


def register(catalogue: Catalogue) -> None:
    catalogue.add(describe_estimator(GatedRegressor, name=NAME), build)
