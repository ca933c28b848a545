"""The catalogue: what it lists and leaves out, its schemas, settings validation, plugins."""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from typing import Any

import jsonschema
import msgspec
import pytest

from service.domain.errors import InvalidInput
from service.estimators.catalogue import Catalogue, load_catalogue
from service.estimators.errors import PluginError
from service.estimators.model_type import OUTPUTS, TASKS, ModelType
from service.estimators.predicting import predict
from service.estimators.schema import object_parameters, parameter_schema, to_json
from service.estimators.table import Table
from service.estimators.training import fit_model
from tests.estimators import plugin_example
from tests.factories import errors_of


def _class_of(name: str) -> type[Any]:
    module, _, cls = name.rpartition(".")
    found: type[Any] = getattr(importlib.import_module(module), cls)
    return found


def _defaults(cls: type[Any]) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constructing is silent today; stay robust
        params: dict[str, Any] = cls().get_params(deep=False)
    return params


def test_lists_many_types_with_public_names(catalogue: Catalogue) -> None:
    types = catalogue.all()
    assert len(types) >= 130
    assert [t.name for t in types] == sorted(t.name for t in types)
    for model_type in types:
        assert re.fullmatch(r"sklearn(\.[a-z_]+)+\.[A-Z]\w+", model_type.name)
        assert "._" not in model_type.name
        assert _class_of(model_type.name).__name__ == model_type.name.rsplit(".", 1)[1]
        url = f"https://scikit-learn.org/stable/modules/generated/{model_type.name}.html"
        assert model_type.docs_url == url
        assert model_type.description.endswith(url)
        assert model_type.task in TASKS
        assert set(model_type.outputs) <= set(OUTPUTS)
        assert model_type.can_input and model_type.can_output
        assert model_type.input_description and model_type.output_description
        assert model_type.update_description


def test_well_known_types_have_their_task_outputs_and_description(catalogue: Catalogue) -> None:
    logistic = catalogue.get("sklearn.linear_model.LogisticRegression")
    assert logistic is not None
    assert logistic.task == "classification" and logistic.supervised
    assert logistic.outputs == ["predict", "predict_proba", "decision_function"]
    assert logistic.description.startswith("Logistic Regression (aka logit, MaxEnt) classifier.")
    sgd = catalogue.get("sklearn.linear_model.SGDClassifier")
    assert sgd is not None and sgd.incremental and sgd.can_update
    assert sgd.conditional_outputs == ["predict_proba"]  # needs loss="log_loss"
    kmeans = catalogue.get("sklearn.cluster.KMeans")
    assert kmeans is not None and kmeans.task == "clustering" and not kmeans.supervised
    assert kmeans.outputs == ["predict", "transform"]
    pca = catalogue.get("sklearn.decomposition.PCA")
    assert pca is not None and pca.task == "transform" and pca.default_output == "transform"
    lof = catalogue.get("sklearn.neighbors.LocalOutlierFactor")
    assert lof is not None and lof.outputs == []  # predict needs novelty=True
    assert lof.conditional_outputs == ["predict", "decision_function"] and lof.can_output
    select = catalogue.get("sklearn.feature_selection.SelectKBest")
    assert select is not None and select.supervised  # f_classif needs the target
    mixture = catalogue.get("sklearn.mixture.GaussianMixture")
    assert mixture is not None and mixture.task == "density"
    assert catalogue.get("sklearn.linear_model.NoSuchThing") is None


def test_stateless_transformers_cannot_update(catalogue: Catalogue) -> None:
    frozen = {t.name for t in catalogue.all() if not t.can_update}
    assert frozen == {
        "sklearn.kernel_approximation.AdditiveChi2Sampler",
        "sklearn.preprocessing.Binarizer",
        "sklearn.preprocessing.Normalizer",
    }


@pytest.mark.parametrize(
    "name",
    [
        "sklearn.compose.ColumnTransformer",
        "sklearn.pipeline.Pipeline",
        "sklearn.pipeline.FeatureUnion",
        "sklearn.ensemble.StackingClassifier",
        "sklearn.ensemble.VotingRegressor",
        "sklearn.feature_selection.RFE",
        "sklearn.feature_selection.SelectFromModel",
        "sklearn.multioutput.MultiOutputClassifier",
        "sklearn.multiclass.OneVsRestClassifier",
        "sklearn.model_selection.GridSearchCV",
        "sklearn.semi_supervised.SelfTrainingClassifier",
        "sklearn.preprocessing.FunctionTransformer",
        "sklearn.cluster.DBSCAN",
        "sklearn.manifold.TSNE",
        "sklearn.neighbors.KernelDensity",
        "sklearn.covariance.EmpiricalCovariance",
        "sklearn.feature_extraction.text.TfidfVectorizer",
        "sklearn.linear_model.MultiTaskLasso",
    ],
)
def test_leaves_out_what_json_cannot_build_or_use(catalogue: Catalogue, name: str) -> None:
    assert name not in catalogue
    assert catalogue.excluded[name]


def test_nothing_listed_needs_an_object(catalogue: Catalogue) -> None:
    for model_type in catalogue.all():
        cls = _class_of(model_type.name)
        signature = inspect.signature(cls.__init__)
        required = [
            p.name
            for p in list(signature.parameters.values())[1:]
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        assert not required, model_type.name
        estimator = catalogue.build(model_type.name, {})
        estimator._validate_params()  # the defaults are valid without any object


def test_schema_defaults_match_get_params(catalogue: Catalogue) -> None:
    unrepresentable = set()
    for model_type in catalogue.all():
        schema = model_type.hyperparameters
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        cls = _class_of(model_type.name)
        defaults = _defaults(cls)
        objects = object_parameters(cls, defaults)
        assert set(schema["properties"]) | objects == set(defaults), model_type.name
        for key, prop in schema["properties"].items():
            # {"default": <JSON form>}, or {} when the default has none
            plain = parameter_schema("no_validation", defaults[key])
            if plain:
                assert prop["default"] == to_json(defaults[key]), (model_type.name, key)
            else:
                assert "default" not in prop
                assert "not representable in JSON" in prop["description"]
                unrepresentable.add(f"{cls.__name__}.{key}")
    assert {"SimpleImputer.missing_values", "RANSACRegressor.max_skips"} <= unrepresentable
    assert {"OneHotEncoder.dtype"} <= unrepresentable


def test_schemas_are_valid_json_schema_and_accept_their_defaults(catalogue: Catalogue) -> None:
    checked = 0
    for model_type in catalogue.all():
        schema = model_type.hyperparameters
        jsonschema.Draft202012Validator.check_schema(schema)  # raises SchemaError, naming it
        defaults = {k: p["default"] for k, p in schema["properties"].items() if "default" in p}
        refused = jsonschema.Draft202012Validator(schema).iter_errors(defaults)
        assert [e.message for e in refused] == [], model_type.name
        checked += bool(defaults)
    assert checked > 100  # most types have defaults; the check is not vacuous


def test_model_types_encode_as_json(catalogue: Catalogue) -> None:
    encoded = msgspec.json.encode(catalogue.all())
    decoded = msgspec.json.decode(encoded, type=list[ModelType])
    assert decoded == catalogue.all()


def test_object_parameters_are_not_settable(catalogue: Catalogue) -> None:
    name = "sklearn.ensemble.AdaBoostClassifier"
    model_type = catalogue.get(name)
    assert model_type is not None
    assert "estimator" not in model_type.hyperparameters["properties"]
    with pytest.raises(InvalidInput) as exc:
        catalogue.build(name, {"estimator": None})
    assert "takes a Python object" in errors_of(exc)["$.settings.estimator"]


def test_build_applies_settings_converting_json_arrays_to_tuples(catalogue: Catalogue) -> None:
    model = catalogue.build("sklearn.linear_model.LogisticRegression", {"C": 0.5, "max_iter": 50})
    assert model.C == 0.5 and model.max_iter == 50
    # a JSON array becomes the tuple scikit-learn's validation wants
    scaler = catalogue.build("sklearn.preprocessing.MinMaxScaler", {"feature_range": [0, 2]})
    assert scaler.feature_range == (0, 2)
    mlp = catalogue.build("sklearn.neural_network.MLPClassifier", {"hidden_layer_sizes": [8, 4]})
    assert list(mlp.hidden_layer_sizes) == [8, 4]
    catalogue.validate("sklearn.svm.SVC", {"kernel": "linear", "C": 2})  # no error


def test_unknown_setting_names_the_key(catalogue: Catalogue) -> None:
    with pytest.raises(InvalidInput) as exc:
        catalogue.build("sklearn.ensemble.RandomForestClassifier", {"max_dept": 3})
    errors = errors_of(exc)
    assert list(errors) == ["$.settings.max_dept"]
    assert "unknown setting" in errors["$.settings.max_dept"]
    assert "did you mean 'max_depth'" in errors["$.settings.max_dept"]
    with pytest.raises(InvalidInput) as exc:
        catalogue.build("sklearn.svm.SVC", {"odd key": 1})
    assert list(errors_of(exc)) == ['$.settings["odd key"]']


def test_invalid_values_quote_scikit_learn(catalogue: Catalogue) -> None:
    with pytest.raises(InvalidInput) as exc:
        catalogue.validate(
            "sklearn.linear_model.LogisticRegression", {"C": -1, "solver": "magic", "tol": 1e-3}
        )
    errors = errors_of(exc)
    assert set(errors) == {"$.settings.C", "$.settings.solver"}
    assert errors["$.settings.C"] == (
        "The 'C' parameter of LogisticRegression must be a float in the range (0.0, inf]. "
        "Got -1 instead."
    )
    assert (
        "The 'solver' parameter of LogisticRegression must be a str among"
        in (errors["$.settings.solver"])
    )
    with pytest.raises(InvalidInput) as exc:
        catalogue.validate("sklearn.tree.DecisionTreeClassifier", {"max_depth": "deep"})
    assert "Got 'deep' instead." in errors_of(exc)["$.settings.max_depth"]


def test_an_unknown_model_type_is_invalid_input_at_model_type(catalogue: Catalogue) -> None:
    with pytest.raises(InvalidInput) as exc:
        catalogue.build("sklearn.linear_model.Nope", {})
    assert list(errors_of(exc)) == ["$.model_type"]


def test_plugin_types_are_registered_built_and_trained() -> None:
    catalogue = load_catalogue([plugin_example.__name__])
    model_type = catalogue.get(plugin_example.NAME)
    assert model_type is not None
    assert model_type.task == "regression" and model_type.supervised
    assert model_type.hyperparameters["properties"]["shift"]["default"] == 0.0
    assert model_type.docs_url == "https://example.invalid/shifted-mean"
    assert catalogue.build(plugin_example.NAME, {"shift": 2}).shift == 2
    with pytest.raises(InvalidInput) as exc:
        catalogue.build(plugin_example.NAME, {"shift": "up"})
    assert "The 'shift' parameter of ShiftedMeanRegressor" in errors_of(exc)["$.settings.shift"]
    with pytest.raises(InvalidInput) as exc:
        catalogue.build(plugin_example.NAME, {"scale": 2})
    assert list(errors_of(exc)) == ["$.settings.scale"]

    rows = [[1.0, 2.0, 10.0], [2.0, 3.0, 20.0], [3.0, 1.0, 30.0]]
    result = fit_model(
        plugin_example.NAME,
        {"shift": 1.0},
        None,
        "y",
        Table(["a", "b", "y"], rows),
        catalogue=catalogue,
    )
    prediction = predict(result.estimator, result.features, result.feature_kinds, [[0.0, 0.0]])
    assert prediction.to_json() == [21.0]


def test_plugin_errors_name_the_module() -> None:
    with pytest.raises(PluginError, match="'tests.estimators.no_such_plugin' cannot be imported"):
        load_catalogue(["tests.estimators.no_such_plugin"])
    with pytest.raises(PluginError, match="'tests.estimators.conftest' has no register"):
        load_catalogue(["tests.estimators.conftest"])
    with pytest.raises(PluginError, match="'tests.estimators.plugin_broken' failed to register"):
        load_catalogue(["tests.estimators.plugin_broken"])
    with pytest.raises(PluginError, match="already registered"):
        load_catalogue([plugin_example.__name__, plugin_example.__name__])


def test_a_plugin_catalogue_does_not_change_the_default_one(catalogue: Catalogue) -> None:
    with_plugin = load_catalogue([plugin_example.__name__])
    assert plugin_example.NAME in with_plugin
    assert plugin_example.NAME not in catalogue
    assert len(with_plugin) == len(catalogue) + 1
