"""Every catalogue type builds with its defaults, fits on a small suitable table (iris) and
answers each output it offers.

Documented exceptions, kept short:

- `NON_DEFAULT`: types whose defaults cannot fit iris by design, fitted with the settings
  given (random projections' `n_components="auto"` asks for thousands of features);
- `TRANSFORM_WARNS`: types whose `transform` itself may warn (NMF solves an optimisation per
  call); the warning is expected there and ignored for that type only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service.estimators import model_type as mt
from service.estimators.catalogue import Catalogue, load_catalogue
from service.estimators.predicting import predict
from service.estimators.table import Table
from service.estimators.training import fit_model
from tests.iris import IRIS_FEATURES as FEATURES
from tests.iris import iris_records

NON_DEFAULT: dict[str, dict[str, Any]] = {
    "sklearn.random_projection.GaussianRandomProjection": {"n_components": 2},
    "sklearn.random_projection.SparseRandomProjection": {"n_components": 2},
}
TRANSFORM_WARNS = {"sklearn.decomposition.NMF"}


def _params() -> list[Any]:
    params = []
    for model_type in load_catalogue().all():
        marks = []
        if model_type.name in TRANSFORM_WARNS:
            marks.append(
                pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
            )
        params.append(pytest.param(model_type.name, marks=marks, id=model_type.name))
    return params


def _target(model_type: mt.ModelType) -> str | None:
    if model_type.task == mt.REGRESSION:
        return "petal_width"  # positive, as Gamma/Poisson/Tweedie need
    return "species" if model_type.supervised else None


@pytest.mark.parametrize("name", _params())
def test_fits_with_defaults_and_predicts(catalogue: Catalogue, name: str) -> None:
    model_type = catalogue.get(name)
    assert model_type is not None
    target = _target(model_type)
    features = [f for f in FEATURES if f != target]
    data = Table.from_records(iris_records())
    result = fit_model(name, NON_DEFAULT.get(name, {}), features, target, data, catalogue=catalogue)
    assert result.rows == 150
    assert result.features == features
    assert (result.classes is not None) == (model_type.task == mt.CLASSIFICATION)
    rows = Table(features, [[r[f] for f in features] for r in iris_records()[::30]])
    for output in model_type.outputs:
        prediction = predict(result.estimator, result.features, result.feature_kinds, rows, output)
        assert len(prediction.values) == 5
        if output != "predict" or model_type.task != mt.CLASSIFICATION:
            assert np.isfinite(np.asarray(prediction.values, dtype=float)).all()
        assert len(prediction.to_json()) == 5


def test_exception_lists_name_listed_types(catalogue: Catalogue) -> None:
    listed = {t.name for t in catalogue.all()}
    assert listed.issuperset(NON_DEFAULT)
    assert listed.issuperset(TRANSFORM_WARNS)
