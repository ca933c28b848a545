"""Updates: partial_fit for incremental types, refit on old + new rows for the others."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from service.domain.errors import Conflict, InvalidInput
from service.estimators.catalogue import Catalogue
from service.estimators.predicting import predict
from service.estimators.table import Table
from service.estimators.training import fit_model, supports_partial_fit, update_model
from tests.factories import errors_of
from tests.iris import IRIS_FEATURES as FEATURES
from tests.iris import iris_records

SGD = "sklearn.linear_model.SGDClassifier"


def _coef(result: Any) -> np.ndarray:
    return np.array(result.estimator.steps[-1][1].coef_, copy=True)


def test_sgd_partial_fit_changes_the_model_and_keeps_classes(catalogue: Catalogue) -> None:
    records = iris_records()
    first, second = records[::2], records[1::2]
    previous = fit_model(SGD, {"max_iter": 50}, None, "species", first, catalogue=catalogue)
    assert supports_partial_fit(previous.estimator)
    before = _coef(previous)
    updated = update_model(previous, second)
    assert updated.classes == previous.classes == ["setosa", "versicolor", "virginica"]
    assert updated.rows == 150
    assert updated.features == previous.features and updated.target == "species"
    assert updated.settings == previous.settings
    assert not np.allclose(_coef(updated), before)
    assert np.allclose(_coef(previous), before)  # the previous version is untouched
    assert set(updated.metrics) == {"accuracy", "f1_macro"}


def test_update_without_species_of_some_class(catalogue: Catalogue) -> None:
    records = iris_records()
    previous = fit_model(SGD, {}, None, "species", records, catalogue=catalogue)
    only_setosa = [r for r in records if r["species"] == "setosa"][:10]
    updated = update_model(previous, only_setosa)  # classes= keeps all three
    assert updated.classes == previous.classes


def test_unseen_class_at_update_names_the_target(catalogue: Catalogue) -> None:
    records = iris_records()
    previous = fit_model(SGD, {}, None, "species", records, catalogue=catalogue)
    new = records[:3]
    new[1] = {**new[1], "species": "daisy"}
    with pytest.raises(InvalidInput) as exc:
        update_model(previous, new)
    errors = errors_of(exc)
    assert list(errors) == ["$.data[1].species"]
    assert "class not seen at the first training" in errors["$.data[1].species"]


def test_update_checks_columns_and_values(catalogue: Catalogue) -> None:
    records = iris_records()
    previous = fit_model(SGD, {}, None, "species", records, catalogue=catalogue)
    with pytest.raises(InvalidInput) as exc:
        update_model(previous, [{"sepal_length": 1.0}])
    messages = {error.msg for error in exc.value.errors}
    assert "missing column 'petal_width'" in messages and "missing column 'species'" in messages
    bad = [dict(r) for r in records[:2]]
    bad[1]["petal_width"] = None
    with pytest.raises(InvalidInput) as exc:
        update_model(previous, bad)
    assert list(errors_of(exc)) == ["$.data[1].petal_width"]


def test_incremental_with_text_features_keeps_its_encoding(catalogue: Catalogue) -> None:
    records = [
        {"color": ["red", "blue"][i % 2], "size": float(i % 5), "label": ["hot", "cold"][i % 2]}
        for i in range(40)
    ]
    previous = fit_model(
        "sklearn.naive_bayes.MultinomialNB", {}, None, "label", records, catalogue=catalogue
    )
    new = [{"color": "green", "size": 1.0, "label": "hot"}, *records[:5]]
    updated = update_model(previous, new)  # "green" was not seen: it encodes as all zeros
    encoder = updated.estimator.steps[0][1]
    assert encoder.transformers_[0][1].categories_[0].tolist() == ["blue", "red"]
    assert updated.feature_kinds == {"color": "text", "size": "numeric"}


def test_an_unsupervised_incremental_model_updates_without_a_target(
    catalogue: Catalogue, iris: Table
) -> None:
    previous = fit_model(
        "sklearn.cluster.MiniBatchKMeans",
        {"n_clusters": 3},
        FEATURES,
        None,
        iris,
        catalogue=catalogue,
    )
    centers = previous.estimator.steps[-1][1].cluster_centers_.copy()
    updated = update_model(previous, iris_records()[::3])
    assert not np.allclose(updated.estimator.steps[-1][1].cluster_centers_, centers)
    assert updated.rows == 200 and updated.target is None and updated.features == FEATURES
    assert "silhouette" in updated.metrics


def test_non_incremental_models_refuse_partial_fit(catalogue: Catalogue, iris: Table) -> None:
    previous = fit_model(
        "sklearn.linear_model.LogisticRegression", {}, None, "species", iris, catalogue=catalogue
    )
    assert not supports_partial_fit(previous.estimator)
    with pytest.raises(Conflict):
        update_model(previous, iris_records()[:5])


def test_refit_uses_previous_and_new_rows(catalogue: Catalogue) -> None:
    """The original's bug: an update refit on the new rows only (coef 2.0 → 0.0)."""
    linear = "sklearn.linear_model.LinearRegression"
    old = Table(["x", "y"], [[float(x), 2.0 * x] for x in range(10)])
    new = Table.from_records([{"y": 5.0, "x": float(x)} for x in range(10, 15)])
    previous = fit_model(linear, {}, None, "y", old, catalogue=catalogue)
    assert previous.estimator.steps[-1][1].coef_[0] == pytest.approx(2.0)

    combined = old.concat(new)
    assert combined.columns == ["x", "y"] and len(combined) == 15
    refit = fit_model(linear, previous.settings, previous.features, "y", combined,
                      catalogue=catalogue)  # fmt: skip
    assert refit.rows == 15
    new_only = fit_model(linear, {}, None, "y", new, catalogue=catalogue)
    assert new_only.estimator.steps[-1][1].coef_[0] == pytest.approx(0.0)
    assert 0.1 < refit.estimator.steps[-1][1].coef_[0] < 1.9  # both batches count


def test_concat_aligns_columns_by_name() -> None:
    first = Table(["a", "b"], [[1, 2]])
    second = Table.from_records([{"b": 3, "c": 4}])
    combined = first.concat(second)
    assert list(combined.columns) == ["a", "b", "c"]
    assert [list(row) for row in combined.rows] == [[1, 2, None], [None, 3, 4]]


def test_a_pickled_fit_result_can_still_be_updated_and_predict(
    catalogue: Catalogue, iris: Table
) -> None:
    result = fit_model(SGD, {}, None, "species", iris, catalogue=catalogue)
    restored = pickle.loads(pickle.dumps(result))
    assert update_model(restored, iris_records()[:10]).rows == 160
    one = Table(restored.features, [[5.1, 3.5, 1.4, 0.2]])
    assert predict(restored.estimator, restored.features, restored.feature_kinds, one).to_json()
