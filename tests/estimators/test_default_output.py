"""One rule picks the output a request gets when it names none, for a model type (catalogue)
and for a trained version (online and batch predictions): `predict`, else `transform`, else
the first offered."""

from __future__ import annotations

from typing import Any

import pytest

from service.estimators.catalogue import Catalogue
from service.estimators.model_type import default_output
from service.estimators.predicting import offered_outputs
from service.estimators.training import fit_model
from tests.iris import IRIS_FEATURES as FEATURES
from tests.iris import iris_records

KINDS = [
    ("sklearn.linear_model.LogisticRegression", "species", "predict"),  # a classifier
    ("sklearn.linear_model.LinearRegression", "petal_width", "predict"),  # a regressor
    ("sklearn.cluster.KMeans", None, "predict"),  # a clusterer
    ("sklearn.decomposition.PCA", None, "transform"),  # a transformer
]


@pytest.mark.parametrize(("model_type", "target", "expected"), KINDS)
def test_a_type_and_its_trained_version_default_to_the_same_output(
    catalogue: Catalogue, model_type: str, target: str | None, expected: str
) -> None:
    described = catalogue.get(model_type)
    assert described is not None
    assert described.default_output == default_output(described.outputs) == expected
    features = [f for f in FEATURES if f != target]
    settings: dict[str, Any] = {"n_clusters": 3} if model_type.endswith("KMeans") else {}
    fitted = fit_model(model_type, settings, features, target, iris_records(), catalogue=catalogue)
    assert default_output(offered_outputs(fitted.estimator)) == expected


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        (["predict_proba", "predict", "transform"], "predict"),
        (["decision_function", "transform"], "transform"),
        (["predict_proba", "decision_function"], "predict_proba"),
        ([], "predict"),
    ],
)
def test_predict_then_transform_then_the_first_offered(offered: list[str], expected: str) -> None:
    assert default_output(offered) == expected
