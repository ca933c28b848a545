"""The stored scikit-learn `Pipeline`: optional feature encoding, then the model.

- Every feature numeric, or a model that takes text natively (OneHotEncoder, OrdinalEncoder,
  TargetEncoder: scikit-learn tag `categorical` without `positive_only`): the pipeline is
  `[("model", estimator)]` and receives the feature matrix as is.
- Otherwise `[("features", ColumnTransformer), ("model", estimator)]`: text columns are
  one-hot encoded (`handle_unknown="ignore"`, so a category unseen in training encodes as all
  zeros) and numeric columns are cast to float64. The encoding is sparse only when the model
  accepts sparse input.

Steps are fitted and applied one by one (`fit_steps`, `apply`) rather than through
`Pipeline.fit`/`predict`, which adds ~80 µs of routing per call; the result is the same.
Columns always arrive in the order of the model's `features`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from service.estimators.frame import TEXT, FeatureKind

MODEL_STEP = "model"
FEATURES_STEP = "features"


def takes_text(estimator: Any) -> bool:
    """Whether the estimator encodes text columns itself (the encoders)."""
    tags = estimator.__sklearn_tags__().input_tags
    return bool(tags.categorical and not tags.positive_only)


def make_pipeline(estimator: Any, kinds: Sequence[FeatureKind]) -> Pipeline:
    """An unfitted pipeline for features of these kinds (in feature order)."""
    text = [j for j, kind in enumerate(kinds) if kind == TEXT]
    if not text or takes_text(estimator):
        return Pipeline([(MODEL_STEP, estimator)])
    numeric = [j for j, kind in enumerate(kinds) if kind != TEXT]
    sparse = bool(estimator.__sklearn_tags__().input_tags.sparse)
    encoders: list[tuple[str, Any, list[int]]] = [
        ("text", OneHotEncoder(handle_unknown="ignore", sparse_output=sparse), text)
    ]
    if numeric:
        to_float = FunctionTransformer(np.asarray, kw_args={"dtype": np.float64})
        encoders.append(("numeric", to_float, numeric))
    encode = ColumnTransformer(encoders, sparse_threshold=0.3 if sparse else 0.0)
    return Pipeline([(FEATURES_STEP, encode), (MODEL_STEP, estimator)])


def final_estimator(pipeline: Pipeline) -> Any:
    return pipeline.steps[-1][1]


def encode(pipeline: Pipeline, X: Any) -> Any:
    """`X` through every step but the model (fitted steps)."""
    for _, step in pipeline.steps[:-1]:
        X = step.transform(X)
    return X


def fit_steps(pipeline: Pipeline, X: Any, y: Any, fit_params: Mapping[str, Any]) -> None:
    """Fit the encoding steps on X, then the model on the encoded X with `fit_params`."""
    for _, step in pipeline.steps[:-1]:
        X = step.fit_transform(X, y)
    model = final_estimator(pipeline)
    if y is None:
        model.fit(X, **fit_params)
    else:
        model.fit(X, y, **fit_params)


def partial_fit_model(pipeline: Pipeline, X: Any, y: Any, fit_params: Mapping[str, Any]) -> None:
    """Encode X with the fitted (frozen) steps, then `partial_fit` the model."""
    encoded = encode(pipeline, X)
    model = final_estimator(pipeline)
    if y is None:
        model.partial_fit(encoded, **fit_params)
    else:
        model.partial_fit(encoded, y, **fit_params)


def apply(pipeline: Pipeline, method: str, X: Any) -> Any:
    """`model.<method>(encode(X))`."""
    return getattr(final_estimator(pipeline), method)(encode(pipeline, X))
