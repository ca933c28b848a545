"""What a fit produces (`FitResult`) and what an update needs of the current version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sklearn.pipeline import Pipeline

from service.estimators.frame import FeatureKind


class FittedModel(Protocol):
    """What `update_model` needs of the current version (a `FitResult` is one)."""

    @property
    def estimator(self) -> Pipeline: ...
    @property
    def model_type(self) -> str: ...
    @property
    def settings(self) -> Mapping[str, Any]: ...
    @property
    def features(self) -> Sequence[str]: ...
    @property
    def feature_kinds(self) -> Mapping[str, FeatureKind]: ...
    @property
    def target(self) -> str | None: ...
    @property
    def classes(self) -> Sequence[Any] | None: ...
    @property
    def rows(self) -> int: ...


@dataclass(frozen=True)
class FitResult:
    """A fitted pipeline and what a version records about it.

    `settings` are the effective settings (with the seeded `random_state`). `features` are in
    the order the pipeline takes them, with their `feature_kinds`. `rows` counts the training
    rows the model has seen (for an update: the previous count plus the new rows). `classes`
    are a classifier's class labels (JSON values), else None. `metrics` map a metric name to
    its held-out value (empty when evaluation was skipped). `warnings` are the unique
    warnings scikit-learn emitted, as "Category: message" (bounded, see `recorded_warnings`).
    `settings_used` are every hyperparameter of the fitted estimator, defaults included, as
    JSON (see `settings_used`): what a version shows as its settings.
    """

    estimator: Pipeline
    model_type: str
    settings: dict[str, Any]
    features: list[str]
    feature_kinds: dict[str, FeatureKind]
    target: str | None
    classes: list[Any] | None
    metrics: dict[str, float]
    rows: int
    warnings: list[str] = field(default_factory=list)
    settings_used: dict[str, Any] = field(default_factory=dict)
