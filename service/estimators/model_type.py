"""`ModelType`: one entry of the catalogue; `ModelTypeInfo` is what the API shows of it.

Tasks (the `task` field):

- `classification`: supervised; `predict` gives a class label (classifiers, including the
  semi-supervised ones, where the label -1 marks an unlabelled row).
- `regression`: supervised; `predict` gives a number.
- `clustering`: unsupervised; `predict` gives a cluster index.
- `density`: unsupervised mixture models (GaussianMixture, ...); `predict` gives the mixture
  component, `predict_proba` the component probabilities.
- `outlier_detection`: unsupervised; `predict` gives 1 (inlier) or -1 (outlier).
- `transform`: everything else that has `transform` (scalers, decompositions, encoders,
  feature selectors, ...); some of these are supervised (`supervised: true`, e.g. SelectKBest).

Outputs (`outputs`) are the methods a model of this type offers with its default settings,
among `predict`, `predict_proba`, `decision_function` and `transform`. `conditional_outputs`
are the ones it offers only with some settings (e.g. SVC's `predict_proba` needs
`probability: true`, LocalOutlierFactor's `predict` needs `novelty: true`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

CLASSIFICATION: Final = "classification"
REGRESSION: Final = "regression"
CLUSTERING: Final = "clustering"
DENSITY: Final = "density"
OUTLIER_DETECTION: Final = "outlier_detection"
TRANSFORM: Final = "transform"
TASKS: Final = (CLASSIFICATION, REGRESSION, CLUSTERING, DENSITY, OUTLIER_DETECTION, TRANSFORM)

OUTPUTS: Final = ("predict", "predict_proba", "decision_function", "transform")


class ModelTypeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a model type is and what it can do; `hyperparameters` is a JSON Schema object.

    The `model_types` table stores these fields and `GET /model-types/{type}` shows them."""

    name: str
    task: str
    description: str
    input_description: str
    output_description: str
    update_description: str
    can_input: bool
    can_output: bool
    can_update: bool
    incremental: bool
    supervised: bool
    outputs: list[str]
    hyperparameters: dict[str, Any]
    docs_url: str


class ModelType(ModelTypeInfo, frozen=True, kw_only=True):
    """A catalogue entry: the type's description plus what only the code needs."""

    conditional_outputs: list[str] = msgspec.field(default_factory=list)

    @property
    def default_output(self) -> str:
        return default_output(self.outputs or self.conditional_outputs)


def default_output(offered: Sequence[str]) -> str:
    """The output given when a request names none: `predict` when offered, else `transform`,
    else the first offered; the same rule for a model type and for a trained version."""
    for candidate in ("predict", "transform"):
        if candidate in offered:
            return candidate
    return offered[0] if offered else "predict"
