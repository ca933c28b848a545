"""`[models.limits]`: maxima of the settings that size a fit, in the schemas and in `build`."""

from __future__ import annotations

import jsonschema
import msgspec
import pytest

from service.domain.errors import InvalidInput
from service.estimators.catalogue import Catalogue, load_catalogue
from service.estimators.limits import DTYPES, SettingLimits
from service.estimators.table import Table
from service.estimators.training import fit_model
from service.settings import ModelLimits
from tests.factories import errors_of

MLP = "sklearn.neural_network.MLPClassifier"
FOREST = "sklearn.ensemble.RandomForestClassifier"
POLY = "sklearn.preprocessing.PolynomialFeatures"


@pytest.fixture(scope="module")
def limited() -> Catalogue:
    return load_catalogue(limits=SettingLimits.of(msgspec.structs.asdict(ModelLimits())))


def test_schemas_show_the_maxima_and_still_accept_their_defaults(limited: Catalogue) -> None:
    capped = 0
    for model_type in limited.all():
        schema = model_type.hyperparameters
        jsonschema.Draft202012Validator.check_schema(schema)
        defaults = {k: p["default"] for k, p in schema["properties"].items() if "default" in p}
        refused = jsonschema.Draft202012Validator(schema).iter_errors(defaults)
        assert [e.message for e in refused] == [], model_type.name
        limited.validate(model_type.name, {})  # defaults are within the limits
        capped += "maximum" in str(schema)
    assert capped > 50
    properties = limited.get(MLP).hyperparameters["properties"]  # type: ignore[union-attr]
    layers = properties["hidden_layer_sizes"]["anyOf"]
    assert {"type": "array", "items": {"maximum": 4096}, "maxItems": 16} in layers
    assert {"type": "integer", "minimum": 1, "maximum": 4096} in layers


def test_the_default_catalogue_is_not_changed_by_a_limited_one(
    catalogue: Catalogue, limited: Catalogue
) -> None:
    forest = catalogue.get(FOREST)
    assert (
        forest is not None and "maximum" not in forest.hyperparameters["properties"]["n_estimators"]
    )
    catalogue.build(FOREST, {"n_estimators": 100_000})


def test_settings_beyond_the_limits_are_invalid_input_naming_each(limited: Catalogue) -> None:
    with pytest.raises(InvalidInput) as caught:
        limited.build(MLP, {"hidden_layer_sizes": [10, 100_000, *[1] * 20], "max_iter": 10**9})
    assert set(errors_of(caught)) == {
        "$.settings.hidden_layer_sizes",
        "$.settings.hidden_layer_sizes[1]",
        "$.settings.max_iter",
    }
    with pytest.raises(InvalidInput) as caught:
        limited.build(POLY, {"degree": [2, 60]})
    assert "models.limits" in errors_of(caught)["$.settings.degree[1]"]
    limited.build(POLY, {"degree": [2, 5]})
    limited.build(FOREST, {"n_estimators": 2000})


def test_a_dtype_must_name_a_numeric_type(limited: Catalogue, iris_numeric: Table) -> None:
    encoder = "sklearn.preprocessing.OneHotEncoder"
    with pytest.raises(InvalidInput) as caught:
        limited.build(encoder, {"dtype": "U1000000000"})
    assert set(errors_of(caught)) == {"$.settings.dtype"}
    dtype = limited.get(encoder).hyperparameters["properties"]["dtype"]  # type: ignore[union-attr]
    assert dtype["enum"] == list(DTYPES)
    result = fit_model(encoder, {"dtype": "float32"}, None, None, iris_numeric, catalogue=limited)
    assert result.settings_used["sparse_output"] is True


@pytest.mark.parametrize(("asked", "used"), [(-1, 2), (-3, 2), (5, 2), (1, 1), (None, None)])
def test_n_jobs_is_clamped_to_the_thread_cap(
    limited: Catalogue, iris: Table, asked: int | None, used: int | None
) -> None:
    settings = {"n_estimators": 5, "n_jobs": asked}
    result = fit_model(FOREST, settings, None, "species", iris, catalogue=limited, threads=2)
    assert result.settings_used["n_jobs"] == used
    assert result.settings == {**settings, "random_state": 0}  # as asked, seeded


def test_without_a_thread_cap_n_jobs_is_kept(catalogue: Catalogue, iris: Table) -> None:
    result = fit_model(
        FOREST, {"n_estimators": 5, "n_jobs": 2}, None, "species", iris, catalogue=catalogue
    )
    assert result.settings_used["n_jobs"] == 2
