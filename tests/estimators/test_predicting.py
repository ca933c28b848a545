"""predict: outputs, input forms, column matching, errors and per-call overhead."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from service.domain.errors import InvalidInput
from service.estimators.catalogue import Catalogue
from service.estimators.predicting import (
    apply_output,
    check_output,
    class_key,
    offered_outputs,
    predict,
    prepare_input,
)
from service.estimators.table import Table
from service.estimators.training import FitResult, fit_model
from tests.factories import errors_of
from tests.iris import IRIS_FEATURES as FEATURES
from tests.iris import iris_records

ROWS = [[5.1, 3.5, 1.4, 0.2], [5.7, 2.8, 4.1, 1.3], [6.7, 3.0, 5.2, 2.3]]


@pytest.fixture(scope="module")
def logistic(catalogue: Catalogue, iris: Table) -> FitResult:
    return fit_model(
        "sklearn.linear_model.LogisticRegression",
        {"max_iter": 500},
        None,
        "species",
        iris,
        catalogue=catalogue,
    )


def _predict(result: FitResult, X: Any, output: str = "predict") -> Any:
    return predict(result.estimator, result.features, result.feature_kinds, X, output)


def test_predict_proba_is_keyed_by_class(logistic: FitResult) -> None:
    prediction = _predict(logistic, Table(FEATURES, ROWS), "predict_proba")
    assert prediction.classes == ["setosa", "versicolor", "virginica"]
    rows = prediction.to_json()
    assert [max(row, key=row.get) for row in rows] == ["setosa", "versicolor", "virginica"]
    assert all(sum(row.values()) == pytest.approx(1.0) for row in rows)


def test_decision_function_gives_scores_per_class_or_one_for_binary(
    catalogue: Catalogue, iris: Table, logistic: FitResult
) -> None:
    multi = _predict(logistic, ROWS, "decision_function")
    assert multi.values.shape == (3, 3) and set(multi.to_json()[0]) == set(logistic.classes or [])
    binary_rows = [r for r in iris_records() if r["species"] != "setosa"]
    svc = fit_model("sklearn.svm.LinearSVC", {}, None, "species", binary_rows, catalogue=catalogue)
    scores = _predict(svc, ROWS, "decision_function")
    assert scores.classes is None and len(scores.to_json()) == 3
    assert all(isinstance(score, float) for score in scores.to_json())


def test_transformers_predict_their_transformed_rows(catalogue: Catalogue, iris: Table) -> None:
    pca = fit_model("sklearn.decomposition.PCA", {"n_components": 2}, FEATURES, None, iris,
                    catalogue=catalogue)  # fmt: skip
    out = _predict(pca, ROWS, "transform").to_json()
    assert len(out) == 3 and all(len(row) == 2 for row in out)
    scaler = fit_model("sklearn.preprocessing.StandardScaler", {}, FEATURES, None, iris,
                       catalogue=catalogue)  # fmt: skip
    scaled = _predict(scaler, iris, "transform").values
    assert scaled.shape == (150, 4)
    assert np.allclose(scaled.mean(axis=0), 0.0) and np.allclose(scaled.std(axis=0), 1.0)


def test_sparse_transform_output_is_dense(catalogue: Catalogue, iris: Table) -> None:
    embedding = fit_model("sklearn.ensemble.RandomTreesEmbedding", {"n_estimators": 3},
                          FEATURES, None, iris, catalogue=catalogue)  # fmt: skip
    out = _predict(embedding, ROWS, "transform")
    assert isinstance(out.values, np.ndarray) and out.values.shape[0] == 3


def test_mixture_probabilities_are_keyed_by_component(catalogue: Catalogue, iris: Table) -> None:
    mixture = fit_model("sklearn.mixture.GaussianMixture", {"n_components": 2}, FEATURES, None,
                        iris, catalogue=catalogue)  # fmt: skip
    prediction = _predict(mixture, ROWS, "predict_proba")
    assert prediction.classes == [0, 1]
    assert set(prediction.to_json()[0]) == {"0", "1"}


def test_columns_are_matched_by_name(logistic: FitResult) -> None:
    shuffled = Table(
        ["petal_width", "extra", *FEATURES[:3]], [[r[3], "x", *r[:3]] for r in ROWS], "$.rows"
    )
    assert _predict(logistic, shuffled).to_json() == _predict(logistic, ROWS).to_json()
    records = Table.from_records([dict(zip(FEATURES, row, strict=True)) for row in ROWS])
    assert _predict(logistic, records).to_json() == ["setosa", "versicolor", "virginica"]
    assert _predict(logistic, np.asarray(ROWS)).to_json() == ["setosa", "versicolor", "virginica"]


def test_missing_feature_columns_are_named(logistic: FitResult) -> None:
    partial = Table.from_records([{"sepal_length": 5.0, "sepal_width": 3.0}])
    with pytest.raises(InvalidInput) as exc:
        _predict(logistic, partial)
    assert [e.msg for e in exc.value.errors] == [
        "missing feature column 'petal_length'",
        "missing feature column 'petal_width'",
    ]
    assert {e.loc for e in exc.value.errors} == {"$.data"}


def test_bad_cells_are_named(logistic: FitResult) -> None:
    records: list[dict[str, Any]] = [dict(zip(FEATURES, row, strict=True)) for row in ROWS]
    records[1]["petal_length"] = None
    records[2]["sepal_width"] = "wide"
    with pytest.raises(InvalidInput) as exc:
        _predict(logistic, Table.from_records(records))
    assert errors_of(exc) == {"$.data[2].sepal_width": "expected a number, got 'wide'"}
    records[2]["sepal_width"] = 3.0
    with pytest.raises(InvalidInput) as exc:
        _predict(logistic, Table.from_records(records))
    assert list(errors_of(exc)) == ["$.data[1].petal_length"]


def test_an_output_the_estimator_lacks_is_invalid_input(
    catalogue: Catalogue, iris: Table, logistic: FitResult
) -> None:
    svc = fit_model("sklearn.svm.SVC", {}, None, "species", iris, catalogue=catalogue)
    assert offered_outputs(svc.estimator) == ["predict", "decision_function"]
    with pytest.raises(InvalidInput) as exc:
        _predict(svc, ROWS, "predict_proba")
    assert "does not offer 'predict_proba'" in errors_of(exc)["$.output"]
    with pytest.raises(InvalidInput) as exc:
        _predict(logistic, ROWS, "score")
    assert list(errors_of(exc)) == ["$.output"]


def test_estimator_rejections_are_invalid_input(catalogue: Catalogue, iris: Table) -> None:
    radius = fit_model("sklearn.neighbors.RadiusNeighborsClassifier", {}, None, "species", iris,
                       catalogue=catalogue, eval_fraction=0)  # fmt: skip
    with pytest.raises(InvalidInput) as exc:
        _predict(radius, [[50.0, 50.0, 50.0, 50.0]])  # no training row within radius 1
    assert "No neighbors found" in exc.value.errors[0].msg


def test_text_features_at_predict(catalogue: Catalogue) -> None:
    records = [{"city": ["Oslo", "Lima"][i % 2], "t": float(i), "y": i % 2} for i in range(30)]
    rows = Table(["city", "t"], [["Lima", 3.0], ["Quito", 4.0], [None, 1.0]])
    tree = fit_model("sklearn.tree.DecisionTreeClassifier", {}, None, "y", records,
                     catalogue=catalogue)  # fmt: skip
    # the tree accepts missing values: a missing or unseen city encodes as all zeros
    assert _predict(tree, rows).to_json()[0] == 1
    logistic = fit_model("sklearn.linear_model.LogisticRegression", {}, None, "y", records,
                         catalogue=catalogue)  # fmt: skip
    with pytest.raises(InvalidInput) as exc:
        _predict(logistic, rows)
    assert errors_of(exc) == {"$.rows[2][0]": "missing value"}


def test_class_labels_become_json_object_keys() -> None:
    assert [class_key(label) for label in ["a", 1, 2.5, True]] == ["a", "1", "2.5", "true"]


def test_no_rows_no_predictions(logistic: FitResult) -> None:
    assert _predict(logistic, Table(FEATURES, [])).to_json() == []


def test_outputs_that_depend_on_settings(catalogue: Catalogue, iris: Table) -> None:
    lof = "sklearn.neighbors.LocalOutlierFactor"
    default = fit_model(lof, {}, FEATURES, None, iris, catalogue=catalogue)
    with pytest.raises(InvalidInput) as exc:
        _predict(default, ROWS)
    assert "(it offers: nothing)" in errors_of(exc)["$.output"]
    novelty = fit_model(lof, {"novelty": True}, FEATURES, None, iris, catalogue=catalogue)
    assert set(_predict(novelty, ROWS).to_json()) <= {1, -1}
    assert "outlier_fraction" in novelty.metrics


def test_a_model_with_text_features_predicts_the_same_after_pickling(catalogue: Catalogue) -> None:
    records = [{"city": ["Oslo", "Lima"][i % 2], "t": float(i), "y": i % 2} for i in range(30)]
    result = fit_model("sklearn.svm.SVC", {}, None, "y", records, catalogue=catalogue)
    restored = pickle.loads(pickle.dumps(result.estimator))
    rows = Table(["city", "t"], [["Lima", 3.0], ["Oslo", 4.0]])
    assert (
        _predict(result, rows).to_json()
        == predict(restored, result.features, result.feature_kinds, rows).to_json()
    )


def test_prepared_inputs_can_be_stacked(catalogue: Catalogue) -> None:
    """The serving layer checks each request, stacks the matrices and predicts once."""
    records = [{"city": ["Oslo", "Lima"][i % 2], "t": float(i), "y": i % 2} for i in range(30)]
    result = fit_model("sklearn.linear_model.LogisticRegression", {}, None, "y", records,
                       catalogue=catalogue)  # fmt: skip
    requests = [Table(["t", "city"], [[3.0, "Lima"]]), Table(["city", "t"], [["Oslo", 4.0]])]
    check_output(result.estimator, "predict_proba")
    matrices = [
        prepare_input(result.estimator, result.features, result.feature_kinds, request)
        for request in requests
    ]
    stacked = apply_output(result.estimator, np.vstack(matrices), "predict_proba")
    one_by_one = [_predict(result, request, "predict_proba").to_json()[0] for request in requests]
    assert stacked.to_json() == one_by_one
    with pytest.raises(InvalidInput):
        check_output(result.estimator, "transform")
