"""Which scikit-learn estimator classes the catalogue lists, and how each one is described.

`exclusion_reason(cls)` says why a class is left out (None when it is listed). A class is left
out when:

1. its constructor has required parameters (Pipeline, ColumnTransformer, Stacking*, Voting*,
   RFE, SelectFromModel, MultiOutput*, OneVsRest*, GridSearchCV, ...): they take estimator
   objects, which JSON settings cannot express;
2. its default settings fail scikit-learn's own validation (SelfTrainingClassifier: its
   `estimator` has no usable default);
3. it is only useful with Python objects (`OBJECT_WRAPPERS`: FunctionTransformer,
   TransformedTargetRegressor);
4. constructing it warns that it is deprecated (PassiveAggressive* in 1.8+);
5. its input tags say it does not take a 2-D table of feature columns (text vectorizers,
   DictVectorizer, FeatureHasher, label encoders, PatchExtractor, IsotonicRegression), or it
   needs a precomputed kernel/distance matrix (KernelCenterer);
6. it needs several target columns (MultiTask*, and `MULTI_TARGET`: CCA, PLSCanonical,
   PLSSVD), while a model here has one target column;
7. it can neither `predict` nor `transform` new rows (DBSCAN, OPTICS, TSNE, covariance
   estimators, NearestNeighbors, KernelDensity, ...).

`describe_estimator(cls, name=...)` builds the `ModelType` of a listed class; plugins may use it
for their own scikit-learn compatible classes. Derived fields:

- `supervised`: a classifier or regressor, a class whose tags require a target, or a
  univariate feature selector (its default `score_func` needs the target);
- `incremental`: the class has `partial_fit`;
- `can_update`: true unless the class is a stateless transformer (scikit-learn tag
  `requires_fit` false: Normalizer, Binarizer, AdditiveChi2Sampler): refitting those on more
  rows gives the same result, so an update would be a no-op. Every other type is updatable:
  incremental ones by `partial_fit` on the new rows, the rest by a refit on the previous
  version's training rows plus the new rows.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from typing import Any, Final

from service.estimators import model_type as mt
from service.estimators.docstrings import summary
from service.estimators.schema import settings_schema

DOCS_URL: Final = "https://scikit-learn.org/stable/modules/generated/{name}.html"

OBJECT_WRAPPERS: Final = frozenset({"FunctionTransformer", "TransformedTargetRegressor"})
MULTI_TARGET: Final = frozenset({"CCA", "PLSCanonical", "PLSSVD"})

_TASKS: Final = {
    "classifier": mt.CLASSIFICATION,
    "regressor": mt.REGRESSION,
    "clusterer": mt.CLUSTERING,
    "density_estimator": mt.DENSITY,
    "outlier_detector": mt.OUTLIER_DETECTION,
}


def exclusion_reason(cls: type[Any]) -> str | None:
    """Why `cls` cannot be a catalogue type, or None when it can."""
    required = _required_parameters(cls)
    if required:
        return f"needs {', '.join(required)}, which JSON settings cannot express"
    if cls.__name__ in OBJECT_WRAPPERS:
        return "only useful with Python callables or estimators, which JSON cannot express"
    if cls.__name__ in MULTI_TARGET:
        return "needs several target columns; a model here has one target column"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator = cls()
            if hasattr(estimator, "_parameter_constraints"):
                estimator._validate_params()
            tags = estimator.__sklearn_tags__()
        except Exception as exc:  # scikit-learn's own reason, whatever its class
            return f"its default settings are unusable without Python objects: {exc}"
    if any(issubclass(w.category, FutureWarning | DeprecationWarning) for w in caught):
        return "deprecated in this scikit-learn version"
    return _shape_reason(cls, tags)


def _shape_reason(cls: type[Any], tags: Any) -> str | None:
    if not tags.input_tags.two_d_array:
        return (
            "does not take a 2-D table of feature columns "
            "(it takes documents, dicts, labels, images or a single column)"
        )
    if tags.input_tags.pairwise:
        return "needs a precomputed kernel or distance matrix"
    if not tags.target_tags.single_output:
        return "needs several target columns; a model here has one target column"
    if not any(hasattr(cls, method) for method in ("predict", "transform")):
        return "can neither predict nor transform new rows"
    return None


def public_name(cls: type[Any]) -> str:
    """`sklearn.<public module>.<Class>`: the shortest public module that exports `cls`."""
    parts = cls.__module__.split(".")
    for end in range(2, len(parts) + 1):
        if parts[end - 1].startswith("_"):
            break
        module = importlib.import_module(".".join(parts[:end]))
        if getattr(module, cls.__name__, None) is cls:
            return f"{module.__name__}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__name__}"


def describe_estimator(
    cls: type[Any], *, name: str | None = None, docs_url: str | None = None
) -> mt.ModelType:
    """The `ModelType` of a scikit-learn compatible class that `exclusion_reason` accepts."""
    name = name or public_name(cls)
    docs_url = docs_url or DOCS_URL.format(name=name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = cls()
        tags = estimator.__sklearn_tags__()
        defaults = estimator.get_params(deep=False)
    task = _task(cls, tags)
    supervised = _supervised(tags, defaults)
    outputs = [m for m in mt.OUTPUTS if hasattr(estimator, m)]
    conditional = [m for m in mt.OUTPUTS if hasattr(cls, m) and m not in outputs]
    incremental = hasattr(cls, "partial_fit")
    stateless = not tags.requires_fit and task == mt.TRANSFORM
    return mt.ModelType(
        name=name,
        task=task,
        description=f"{summary(cls)}\n\nSee {docs_url}",
        input_description=_input_text(cls.__name__, task, supervised, tags),
        output_description=_output_text(task, outputs, conditional),
        update_description=_update_text(cls.__name__, task, incremental, stateless),
        can_input=True,
        can_output=bool(outputs or conditional),
        can_update=not stateless,
        incremental=incremental,
        supervised=supervised,
        outputs=outputs,
        conditional_outputs=conditional,
        hyperparameters=settings_schema(cls, defaults),
        docs_url=docs_url,
    )


def _required_parameters(cls: type[Any]) -> list[str]:
    signature = inspect.signature(cls.__init__)
    return [
        name
        for name, parameter in list(signature.parameters.items())[1:]
        if parameter.default is inspect.Parameter.empty
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]


def task_of(estimator: Any) -> str:
    """The task of a (fitted or unfitted) estimator instance."""
    return _task(type(estimator), estimator.__sklearn_tags__())


def _task(cls: type[Any], tags: Any) -> str:
    task = _TASKS.get(tags.estimator_type or "", mt.TRANSFORM)
    if task in (mt.CLUSTERING, mt.DENSITY) and not hasattr(cls, "predict"):
        return mt.TRANSFORM  # FeatureAgglomeration clusters features, it transforms rows
    return task


def _supervised(tags: Any, defaults: dict[str, Any]) -> bool:
    return (
        tags.estimator_type in ("classifier", "regressor")
        or bool(tags.target_tags.required)
        or "score_func" in defaults
    )


def _input_text(cls_name: str, task: str, supervised: bool, tags: Any) -> str:
    if supervised:
        target = "class labels (text or numbers)" if task == mt.CLASSIFICATION else "numbers"
        if task == mt.TRANSFORM:
            target = "the values the features are scored against"
        text = f"Train fits {cls_name} on the feature columns and the target column ({target})."
    else:
        text = f"Train fits {cls_name} on the feature columns; it needs no target column."
    if tags.input_tags.categorical and not tags.input_tags.positive_only:
        text += " Columns reach the encoder as they are, text and numbers alike."
    else:
        text += (
            " Number columns are used as they are; text columns are one-hot encoded"
            " (a category not seen in training encodes as all zeros)."
        )
    if tags.input_tags.allow_nan:
        text += " Missing feature values (null) are accepted."
    else:
        text += " A row with a missing feature value (null) is rejected."
    if tags.input_tags.positive_only:
        text += " Feature values must not be negative."
    return text + " Request `parameters` are passed to fit as keyword arguments."


_MEANINGS: Final = {
    ("predict", mt.CLASSIFICATION): "the predicted class label",
    ("predict", mt.REGRESSION): "the predicted number",
    ("predict", mt.CLUSTERING): "the index of the nearest cluster",
    ("predict", mt.DENSITY): "the index of the most likely mixture component",
    ("predict", mt.OUTLIER_DETECTION): "1 for an inlier, -1 for an outlier",
    ("predict_proba", mt.CLASSIFICATION): "the probability of each class, keyed by class",
    ("predict_proba", mt.DENSITY): "the probability of each mixture component",
    ("decision_function", mt.CLASSIFICATION): (
        "the confidence score: one number for two classes, one per class otherwise"
    ),
    ("decision_function", mt.OUTLIER_DETECTION): "the anomaly score; negative for outliers",
}


def _output_text(task: str, outputs: list[str], conditional: list[str]) -> str:
    parts = []
    for method in [*outputs, *conditional]:
        meaning = _MEANINGS.get((method, task), "the transformed features, a list of numbers")
        if method == "predict" and task == mt.TRANSFORM:
            meaning = "the prediction of the final estimator"
        note = (
            " (only with some settings; see the scikit-learn page)" if method in conditional else ""
        )
        parts.append(f"`{method}` gives {meaning}{note}")
    return "Predict returns one result per row: " + "; ".join(parts) + "."


def _update_text(cls_name: str, task: str, incremental: bool, stateless: bool) -> str:
    if stateless:
        return (
            f"Not updatable: {cls_name} learns nothing from the rows (it is stateless), "
            "so there is nothing to update."
        )
    if incremental:
        text = (
            f"Update continues training the current version with {cls_name}.partial_fit on "
            "the new rows only. The feature encoding learned at the first training stays "
            "fixed (new text categories encode as all zeros)."
        )
        if task == mt.CLASSIFICATION:
            text += " New rows must use classes seen at the first training."
        return text
    return (
        f"Update refits a fresh {cls_name} on the current version's training rows plus "
        "the new rows, with the same settings."
    )
