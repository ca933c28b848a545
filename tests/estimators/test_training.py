"""fit_model: columns, data checks, text features, metrics, fit parameters, estimator errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from service.domain.errors import InvalidInput
from service.estimators.catalogue import Catalogue
from service.estimators.errors import EstimatorError
from service.estimators.evaluation import holdout_split
from service.estimators.predicting import predict
from service.estimators.table import Table
from service.estimators.training import fit_model, library_versions
from tests.factories import errors_of
from tests.iris import IRIS_FEATURES as FEATURES
from tests.iris import iris_records

LOGISTIC = "sklearn.linear_model.LogisticRegression"
HGB = "sklearn.ensemble.HistGradientBoostingClassifier"


def _colors(n: int) -> list[dict[str, Any]]:
    """`color` decides the label; `size` is noise."""
    palette = {"red": "hot", "orange": "hot", "blue": "cold", "green": "cold"}
    names = list(palette)
    return [
        {"color": names[i % 4], "size": float(i % 7), "label": palette[names[i % 4]]}
        for i in range(n)
    ]


def test_a_logistic_regression_on_iris_records_what_it_learned_from(
    catalogue: Catalogue, iris: Table
) -> None:
    result = fit_model(LOGISTIC, {"max_iter": 1000}, None, "species", iris, catalogue=catalogue)
    assert result.features == FEATURES  # every column but the target
    assert result.target == "species"
    assert result.feature_kinds == dict.fromkeys(FEATURES, "numeric")
    assert result.classes == ["setosa", "versicolor", "virginica"]
    assert result.rows == 150
    assert result.settings == {"max_iter": 1000, "random_state": 0}
    assert set(result.metrics) == {"accuracy", "f1_macro"}
    assert result.metrics["accuracy"] >= 0.9
    predicted = predict(result.estimator, result.features, result.feature_kinds, iris)
    truth = [record["species"] for record in iris_records()]
    assert np.mean(np.asarray(predicted.to_json()) == np.asarray(truth)) >= 0.9
    assert [name for name, _ in result.estimator.steps] == ["model"]  # all numeric: no encoder


def test_warnings_are_recorded_not_raised(catalogue: Catalogue, iris: Table) -> None:
    result = fit_model(LOGISTIC, {"max_iter": 2}, None, "species", iris, catalogue=catalogue)
    assert any(message.startswith("ConvergenceWarning") for message in result.warnings)


def test_target_is_never_a_feature(catalogue: Catalogue, iris: Table) -> None:
    with pytest.raises(InvalidInput) as exc:
        fit_model(LOGISTIC, {}, ["sepal_length", "species"], "species", iris, catalogue=catalogue)
    assert "is the target" in errors_of(exc)["$.features[1]"]


def test_missing_columns_are_named(catalogue: Catalogue, iris: Table) -> None:
    with pytest.raises(InvalidInput) as exc:
        fit_model(LOGISTIC, {}, ["sepal_length", "petal_area"], "kind", iris, catalogue=catalogue)
    errors = errors_of(exc)
    assert errors["$.features[1]"] == "column 'petal_area' is not in the data"
    assert errors["$.target"] == "column 'kind' is not in the data"
    with pytest.raises(InvalidInput) as exc:
        fit_model(LOGISTIC, {}, None, None, iris, catalogue=catalogue)
    assert errors_of(exc) == {"$.target": "this model type needs a target column"}


def test_unsupervised_types_ignore_the_target(catalogue: Catalogue, iris: Table) -> None:
    result = fit_model("sklearn.cluster.KMeans", {"n_clusters": 3}, None, "species", iris,
                       catalogue=catalogue)  # fmt: skip
    assert result.features == FEATURES and result.target is None and result.classes is None


def test_text_features_are_one_hot_encoded(catalogue: Catalogue) -> None:
    data = Table.from_records(_colors(40))
    result = fit_model(LOGISTIC, {}, None, "label", data, catalogue=catalogue)
    assert result.feature_kinds == {"color": "text", "size": "numeric"}
    assert [name for name, _ in result.estimator.steps] == ["features", "model"]
    rows = Table(["size", "color"], [[1.0, "red"], [2.0, "green"], [3.0, "purple"]])
    prediction = predict(result.estimator, result.features, result.feature_kinds, rows)
    assert prediction.to_json()[:2] == ["hot", "cold"]  # an unknown colour still predicts
    assert result.metrics["accuracy"] == 1.0


def test_text_column_with_numbers_is_text(catalogue: Catalogue) -> None:
    records = _colors(40)
    records[5]["color"] = 7  # a number in a text column becomes "7"
    result = fit_model(LOGISTIC, {}, None, "label", records, catalogue=catalogue)
    assert result.feature_kinds["color"] == "text"


def test_encoders_take_text_as_is(catalogue: Catalogue) -> None:
    data = Table.from_records(_colors(8))
    result = fit_model("sklearn.preprocessing.OneHotEncoder", {"sparse_output": False}, ["color"],
                       None, data, catalogue=catalogue)  # fmt: skip
    assert [name for name, _ in result.estimator.steps] == ["model"]
    rows = Table(["color"], [["blue"], ["red"]])
    out = predict(result.estimator, result.features, result.feature_kinds, rows, "transform")
    assert out.to_json() == [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]


@pytest.mark.parametrize("missing", [None, math.nan])
def test_missing_values_name_row_and_column(catalogue: Catalogue, missing: Any) -> None:
    records = iris_records()
    records[3]["sepal_width"] = missing
    with pytest.raises(InvalidInput) as exc:
        fit_model(LOGISTIC, {}, None, "species", records, catalogue=catalogue)
    assert errors_of(exc) == {
        "$.data[3].sepal_width": "missing value (this model type does not accept missing values)"
    }


def test_missing_text_and_record_keys(catalogue: Catalogue) -> None:
    records = _colors(30)
    records[2]["color"] = None
    del records[4]["size"]
    with pytest.raises(InvalidInput) as exc:
        fit_model(LOGISTIC, {}, None, "label", records, catalogue=catalogue)
    errors = errors_of(exc)
    assert set(errors) == {"$.data[4].size"}  # numeric columns are checked first
    records[4]["size"] = 1.0
    with pytest.raises(InvalidInput) as exc:
        fit_model(LOGISTIC, {}, None, "label", records, catalogue=catalogue)
    assert errors_of(exc) == {"$.data[2].color": "missing value"}


def test_errors_in_rows_style_input_are_located_by_row_and_column(catalogue: Catalogue) -> None:
    rows = [[r[f] for f in [*FEATURES, "species"]] for r in iris_records()]
    rows[7][2] = None
    with pytest.raises(InvalidInput) as exc:
        fit_model(LOGISTIC, {}, None, "species", Table([*FEATURES, "species"], rows),
                  catalogue=catalogue)  # fmt: skip
    assert list(errors_of(exc)) == ["$.rows[7][2]"]


def test_hist_gradient_boosting_accepts_missing_values(catalogue: Catalogue) -> None:
    records = iris_records()
    for i in range(0, 150, 5):
        records[i]["petal_length"] = None
    result = fit_model(HGB, {"max_iter": 20}, None, "species", records, catalogue=catalogue)
    rows = Table(FEATURES, [[5.1, 3.5, None, 0.2], [6.5, 3.0, math.nan, 2.0]])
    prediction = predict(result.estimator, result.features, result.feature_kinds, rows)
    assert prediction.to_json() == ["setosa", "virginica"]


def test_wrong_types_name_row_and_column(catalogue: Catalogue) -> None:
    records = iris_records()
    records[10]["petal_length"] = "long"
    records[12]["sepal_width"] = [1, 2]
    with pytest.raises(InvalidInput) as exc:
        fit_model(LOGISTIC, {}, None, "species", records, catalogue=catalogue)
    assert errors_of(exc) == {
        "$.data[10].petal_length": "expected a number, got 'long'",
        "$.data[12].sepal_width": "expected a number, got list",
    }


def test_numeric_strings_and_booleans_count_as_numbers(catalogue: Catalogue) -> None:
    records = iris_records()
    records[10]["petal_length"] = "1.5"
    records[11]["petal_length"] = True
    result = fit_model(LOGISTIC, {}, None, "species", records, catalogue=catalogue)
    assert result.feature_kinds["petal_length"] == "numeric"


def test_an_infinite_feature_value_is_rejected(catalogue: Catalogue) -> None:
    records = iris_records()
    records[1]["sepal_length"] = math.inf
    with pytest.raises(InvalidInput) as exc:
        fit_model(HGB, {}, None, "species", records, catalogue=catalogue)
    assert errors_of(exc) == {"$.data[1].sepal_length": "not a finite number"}


def test_missing_or_mixed_type_targets_are_located(catalogue: Catalogue) -> None:
    records = iris_records()
    records[0]["species"] = None
    records[1]["species"] = 3
    with pytest.raises(InvalidInput) as exc:
        fit_model(LOGISTIC, {}, None, "species", records, catalogue=catalogue)
    assert errors_of(exc) == {
        "$.data[0].species": "missing target value",
        "$.data[1].species": "class labels must be all text or all numbers",
    }
    with pytest.raises(InvalidInput) as exc:
        fit_model("sklearn.linear_model.Ridge", {}, None, "species", iris_records(),
                  catalogue=catalogue)  # fmt: skip
    assert errors_of(exc)["$.data[0].species"] == "expected a number, got 'setosa'"


def test_a_short_row_is_located(catalogue: Catalogue) -> None:
    rows: list[list[Any]] = [[1.0, 2.0, 0], [2.0, 1.0, 1], [3.0, 0]]
    with pytest.raises(InvalidInput) as exc:
        fit_model(LOGISTIC, {}, None, "y", Table(["a", "b", "y"], rows), catalogue=catalogue)
    assert errors_of(exc) == {"$.rows[2]": "has 2 values; expected 3 (one per column)"}


def test_integer_classes_stay_integers(catalogue: Catalogue) -> None:
    rows = [[float(i), float(i % 3), i % 2] for i in range(40)]
    result = fit_model(LOGISTIC, {}, None, "y", Table(["a", "b", "y"], rows), catalogue=catalogue)
    assert result.classes == [0, 1]
    proba = predict(result.estimator, result.features, result.feature_kinds, [[1.0, 1.0]],
                    "predict_proba")  # fmt: skip
    assert set(proba.to_json()[0]) == {"0", "1"}


def test_one_class_is_an_estimator_error(catalogue: Catalogue) -> None:
    records = [r for r in iris_records() if r["species"] == "setosa"]
    with pytest.raises(EstimatorError) as exc:
        fit_model(LOGISTIC, {}, None, "species", records, catalogue=catalogue)
    assert exc.value.model_type == LOGISTIC
    assert "class" in exc.value.message  # scikit-learn's own words


def test_bad_settings_combination_is_an_estimator_error(catalogue: Catalogue, iris: Table) -> None:
    with pytest.raises(EstimatorError, match="n_clusters=500"):
        fit_model("sklearn.cluster.KMeans", {"n_clusters": 500}, None, None, iris,
                  catalogue=catalogue)  # fmt: skip


def test_invalid_settings_are_invalid_input(catalogue: Catalogue, iris: Table) -> None:
    with pytest.raises(InvalidInput) as exc:
        fit_model(LOGISTIC, {"C": 0}, None, "species", iris, catalogue=catalogue)
    assert list(errors_of(exc)) == ["$.settings.C"]


@pytest.mark.parametrize(
    ("model_type", "settings", "target", "metrics"),
    [
        (LOGISTIC, {}, "species", {"accuracy", "f1_macro"}),
        ("sklearn.linear_model.Ridge", {}, "petal_width", {"r2", "mae"}),
        ("sklearn.cluster.KMeans", {"n_clusters": 3}, None, {"silhouette"}),
        ("sklearn.mixture.GaussianMixture", {"n_components": 2}, None, {"log_likelihood"}),
        ("sklearn.ensemble.IsolationForest", {"n_estimators": 20}, None, {"outlier_fraction"}),
        ("sklearn.decomposition.PCA", {}, None, set()),
    ],
)
def test_each_task_is_evaluated_with_its_own_metrics(
    catalogue: Catalogue,
    iris: Table,
    model_type: str,
    settings: dict[str, Any],
    target: str | None,
    metrics: set[str],
) -> None:
    result = fit_model(model_type, settings, None, target, iris, catalogue=catalogue)
    assert set(result.metrics) == metrics
    assert all(math.isfinite(value) for value in result.metrics.values())


def test_metrics_skipped_for_small_data_or_zero_fraction(catalogue: Catalogue) -> None:
    few = iris_records()[::10]  # 15 rows < eval_min_rows
    assert fit_model(LOGISTIC, {}, None, "species", few, catalogue=catalogue).metrics == {}
    result = fit_model(LOGISTIC, {}, None, "species", iris_records(), catalogue=catalogue,
                       eval_fraction=0)  # fmt: skip
    assert result.metrics == {}
    result = fit_model(LOGISTIC, {}, None, "species", few, catalogue=catalogue, eval_min_rows=10)
    assert set(result.metrics) == {"accuracy", "f1_macro"}


def test_final_fit_uses_every_row(catalogue: Catalogue, iris: Table) -> None:
    result = fit_model("sklearn.neighbors.KNeighborsClassifier", {}, None, "species", iris,
                       catalogue=catalogue)  # fmt: skip
    assert result.metrics
    assert result.estimator.steps[-1][1].n_samples_fit_ == 150


def test_failed_evaluation_is_a_warning(catalogue: Catalogue, iris: Table) -> None:
    # with radius 0.1 most held-out rows have no neighbour: scoring fails, training does not
    result = fit_model("sklearn.neighbors.RadiusNeighborsClassifier", {"radius": 0.1}, None,
                       "species", iris, catalogue=catalogue)  # fmt: skip
    assert result.metrics == {}
    assert any("held-out evaluation skipped" in message for message in result.warnings)


def test_fit_parameters_reach_fit_and_unknown_ones_are_refused(
    catalogue: Catalogue, iris: Table
) -> None:
    weights = [1.0 if i % 2 else 2.0 for i in range(150)]
    result = fit_model(LOGISTIC, {}, None, "species", iris, catalogue=catalogue,
                       fit_params={"sample_weight": weights})  # fmt: skip
    assert result.metrics
    with pytest.raises(InvalidInput) as exc:
        fit_model(LOGISTIC, {}, None, "species", iris, catalogue=catalogue,
                  fit_params={"weights": weights, "y": [1]})  # fmt: skip
    errors = errors_of(exc)
    assert "unknown parameter of LogisticRegression.fit" in errors["$.parameters.weights"]
    assert "sample_weight" in errors["$.parameters.weights"]
    assert errors["$.parameters.y"] == "set by the service"


def test_random_state_makes_training_reproducible(catalogue: Catalogue, iris: Table) -> None:
    forest = "sklearn.ensemble.RandomForestClassifier"
    settings = {"n_estimators": 5}
    first = fit_model(forest, settings, None, "species", iris, catalogue=catalogue)
    second = fit_model(forest, settings, None, "species", iris, catalogue=catalogue)
    assert first.settings["random_state"] == 0
    kinds = first.feature_kinds
    proba = [predict(r.estimator, FEATURES, kinds, iris, "predict_proba").values
             for r in (first, second)]  # fmt: skip
    assert np.array_equal(proba[0], proba[1])
    explicit = fit_model(forest, {**settings, "random_state": None}, None, "species", iris,
                         catalogue=catalogue)  # fmt: skip
    assert explicit.settings["random_state"] is None
    assert explicit.estimator.steps[-1][1].random_state is None


def test_given_feature_kinds_win(catalogue: Catalogue) -> None:
    records = [{"zip": float(i % 3), "y": i % 2} for i in range(30)]
    result = fit_model(LOGISTIC, {}, None, "y", records, catalogue=catalogue,
                       feature_kinds={"zip": "text"})  # fmt: skip
    assert result.feature_kinds == {"zip": "text"}


def test_library_versions_name_python_scikit_learn_numpy_and_scipy() -> None:
    versions = library_versions()
    assert set(versions) == {"python", "scikit-learn", "numpy", "scipy"}
    assert versions["scikit-learn"].startswith("1.")


def test_evaluation_rows_can_be_capped(catalogue: Catalogue, iris: Table) -> None:
    split = holdout_split(150, None, "regression", fraction=0.2, min_rows=20, seed=0, max_rows=50)
    assert split is not None
    train, test = split
    assert (len(train), len(test)) == (40, 10)
    assert set(train).isdisjoint(test) and max(*train, *test) < 150
    result = fit_model(LOGISTIC, {}, None, "species", iris, catalogue=catalogue, eval_max_rows=60)
    assert set(result.metrics) == {"accuracy", "f1_macro"} and result.rows == 150


def test_training_on_no_rows_is_refused(catalogue: Catalogue) -> None:
    with pytest.raises(InvalidInput) as exc:
        fit_model(LOGISTIC, {}, None, "y", Table(["x", "y"], []), catalogue=catalogue)
    assert errors_of(exc) == {"$.rows": "no rows to train on"}


def test_a_thread_cap_still_fits(catalogue: Catalogue, iris: Table) -> None:
    result = fit_model(HGB, {"max_iter": 5}, None, "species", iris, catalogue=catalogue, threads=1)
    assert result.classes == ["setosa", "versicolor", "virginica"]
