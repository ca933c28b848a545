"""The forms of prediction rows: the fast float64 path gives exactly the checked path's matrix,
and whatever it cannot take goes to the checked path, which names the bad cell."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.errors import InvalidInput
from service.estimators.catalogue import load_catalogue
from service.estimators.model_type import default_output
from service.estimators.predicting import offered_outputs, prepare_input
from service.estimators.table import Table
from service.estimators.training import fit_model
from service.serving.inputs import Columns, Matrix, Records
from service.serving.registry import LoadedModel
from tests.factories import errors_of
from tests.iris import IRIS_FEATURES, iris_records


def loaded(records: list[dict[str, Any]], model_type: str, target: str) -> LoadedModel:
    fitted = fit_model(model_type, {}, None, target, records, catalogue=load_catalogue())
    outputs = offered_outputs(fitted.estimator)
    return LoadedModel(
        "m",
        model_type,
        1,
        1,
        fitted.estimator,
        list(fitted.features),
        dict(fitted.feature_kinds),
        outputs,
        default_output(outputs),
    )


@pytest.fixture(scope="module")
def iris_model() -> LoadedModel:
    return loaded(iris_records(), "sklearn.naive_bayes.GaussianNB", "species")


@pytest.fixture(scope="module")
def text_model() -> LoadedModel:
    records = [{"x": float(i), "colour": "red" if i % 2 else "blue", "y": i % 2} for i in range(40)]
    return loaded(records, "sklearn.linear_model.LogisticRegression", "y")


def checked(model: LoadedModel, table: Table) -> Any:
    return prepare_input(model.estimator, model.features, model.feature_kinds, table)


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(finite, min_size=4, max_size=4), min_size=1, max_size=20))
def test_the_fast_path_equals_the_checked_path(rows: list[list[float]]) -> None:
    model = loaded_iris()
    records = [dict(zip(reversed(IRIS_FEATURES), reversed(r), strict=True)) for r in rows]
    expected = checked(model, Table(IRIS_FEATURES, rows))
    for form in (Records(records), Columns(IRIS_FEATURES, rows), Matrix(np.array(rows))):
        got = form.matrix(model)
        assert got.dtype == np.float64 and np.array_equal(got, expected), form


_IRIS: list[LoadedModel] = []


def loaded_iris() -> LoadedModel:  # hypothesis cannot take function-scoped fixtures
    if not _IRIS:
        _IRIS.append(loaded(iris_records(), "sklearn.naive_bayes.GaussianNB", "species"))
    return _IRIS[0]


def test_extra_keys_and_integers_take_the_fast_path(iris_model: LoadedModel) -> None:
    records = [{"note": "x", **dict(zip(IRIS_FEATURES, (5, 3, 1, 0), strict=True))}]
    matrix = Records(records).matrix(iris_model)
    assert matrix.tolist() == [[5.0, 3.0, 1.0, 0.0]]


@pytest.mark.parametrize(
    ("cell", "where"),
    [(None, "$.data[1].petal_width"), ("wide", "$.data[1].petal_width")],
)
def test_a_bad_record_cell_is_named(iris_model: LoadedModel, cell: Any, where: str) -> None:
    good = dict(zip(IRIS_FEATURES, (5.1, 3.5, 1.4, 0.2), strict=True))
    with pytest.raises(InvalidInput) as caught:
        Records([good, {**good, "petal_width": cell}]).matrix(iris_model)
    assert where in errors_of(caught)


def test_a_missing_feature_is_named(iris_model: LoadedModel) -> None:
    with pytest.raises(InvalidInput) as caught:
        Records([{"sepal_length": 1.0}]).matrix(iris_model)
    assert "missing feature column 'petal_width'" in str(errors_of(caught))


def test_a_ragged_row_is_named(iris_model: LoadedModel) -> None:
    with pytest.raises(InvalidInput) as caught:
        Columns(IRIS_FEATURES, [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]]).matrix(iris_model)
    assert "$.rows[1]" in errors_of(caught)


def test_columns_in_another_order_are_matched_by_name(iris_model: LoadedModel) -> None:
    row = [5.1, 3.5, 1.4, 0.2]
    turned = Columns(list(reversed(IRIS_FEATURES)), [list(reversed(row))])
    assert turned.matrix(iris_model).tolist() == [row]


def test_non_finite_numbers_take_the_checked_path(iris_model: LoadedModel) -> None:
    values = np.array([[5.1, 3.5, math.nan, 0.2]])
    with pytest.raises(InvalidInput) as caught:  # GaussianNB takes no missing values
        Matrix(values, "$.inputs[0].data").matrix(iris_model)
    assert "$.inputs[0].data[0][2]" in errors_of(caught)


def test_text_features_are_encoded_by_the_model(text_model: LoadedModel) -> None:
    rows = [[1.0, "red"], [2.0, "blue"]]
    ordered = [[row[text_model.features.index(c)] for c in ("x", "colour")] for row in rows]
    columns = Columns(["x", "colour"], ordered)
    expected = checked(text_model, Table(["x", "colour"], ordered))
    by_matrix = Matrix(np.array([[r[i] for i in range(2)] for r in rows], dtype=object))
    assert np.array_equal(columns.matrix(text_model), expected)
    assert text_model.features == ["x", "colour"]
    assert np.array_equal(by_matrix.matrix(text_model), expected)
