"""Errors of the estimators package.

- `EstimatorError`: scikit-learn refused to fit (a bad combination of hyperparameters, a
  single class, too few rows for the settings, ...). It is a `DomainError`: the job fails for
  good, without retry, and `message` is scikit-learn's own readable reason.
- `PluginError`: a `[models] plugins` module cannot be imported or registered. A startup
  configuration error, not a domain error.

Bad input data and bad settings are `service.domain.errors.InvalidInput` with one
`FieldError` per problem.
"""

from __future__ import annotations

from service.domain.errors import DomainError


class EstimatorError(DomainError):
    """scikit-learn rejected the fit; `message` is its reason."""

    def __init__(self, model_type: str, message: str) -> None:
        super().__init__(f"{model_type}: {message}")
        self.model_type = model_type
        self.message = message


class PluginError(Exception):
    """A models plugin module failed to load; the message names the module."""

    def __init__(self, module: str, problem: str) -> None:
        super().__init__(f"models plugin {module!r} {problem}")
        self.module = module
        self.problem = problem
