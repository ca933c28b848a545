"""Estimators: the model-type catalogue and the pure training/prediction core.

Plain synchronous Python over scikit-learn and numpy (no HTTP, database or queue imports), so
the API and the worker's child processes can both use it.

- `catalogue.py`: `load_catalogue(plugins)` → `Catalogue` of `ModelType`s (`get`, `all`,
  `build`, `validate`), discovered from scikit-learn (`describe.py`, `schema.py`) and plugins.
- `training.py`: `fit_model`, `update_model`, `FitResult`.
- `predicting.py`: `predict`, `Prediction`.
- `table.py`: `Table`, the columns + rows form of data.
- `errors.py`: `EstimatorError`, `PluginError`.
"""

from service.estimators.catalogue import Catalogue, load_catalogue
from service.estimators.describe import describe_estimator
from service.estimators.errors import EstimatorError, PluginError
from service.estimators.model_type import ModelType
from service.estimators.predicting import Prediction, predict
from service.estimators.table import Table
from service.estimators.training import FitResult, fit_model, update_model

__all__ = [
    "Catalogue",
    "EstimatorError",
    "FitResult",
    "ModelType",
    "PluginError",
    "Prediction",
    "Table",
    "describe_estimator",
    "fit_model",
    "load_catalogue",
    "predict",
    "update_model",
]
