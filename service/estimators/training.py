"""Training: `fit_model` (train, and the refit form of update) and `update_model` (partial_fit).

Pure, synchronous functions for the worker's child process. Contracts:

- Columns. `features=None` means every column except the target; the target is never a
  feature. A supervised type needs a target. Missing columns, bad cells and missing values
  raise `InvalidInput` naming them (see `frame.py`).
- Settings are validated by `Catalogue.build` (`InvalidInput` on `$.settings.<key>`).
  When the estimator has a `random_state` that the settings leave out and that defaults to
  None, it is set to `random_state` (0 by default) so training is reproducible; an explicit
  `"random_state": null` in the settings is kept. `FitResult.settings` holds the effective
  settings.
- `fit_params` (the request's `parameters`) go to `fit` (or `partial_fit`) as keyword
  arguments; an unknown name raises `InvalidInput` on `$.parameters.<key>`. Lists as long as
  the data (e.g. `sample_weight`) are split with the rows for evaluation.
- Metrics come from a held-out split before the final fit on all rows (`evaluation.py`).
- Any exception scikit-learn raises while fitting becomes `EstimatorError` with its message
  (bad combinations of settings, one class only, ...). Warnings scikit-learn emits (e.g.
  ConvergenceWarning) are caught and returned in `FitResult.warnings`.

Update. `update_model` continues an incremental model (`supports_partial_fit`) with
`partial_fit` on the new rows only: the encoding step stays as fitted at the first training,
the feature kinds and target are the previous version's, and for classifiers the classes are
fixed: `classes=` the ones observed at the first training is passed to `partial_fit`, and a
new row with another class raises `InvalidInput` naming the target cell. A non-incremental
update is a refit and is the caller's job: `fit_model` on
`previous_training_rows.concat(new_rows)` with the same settings, features and target.
"""

from __future__ import annotations

import copy
import inspect
import platform
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import sklearn
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from service.domain.errors import Conflict, DomainError, FieldError, InvalidInput
from service.estimators import model_type as mt
from service.estimators.catalogue import Catalogue
from service.estimators.describe import task_of
from service.estimators.errors import EstimatorError
from service.estimators.evaluation import holdout_metrics, holdout_split
from service.estimators.frame import FeatureKind, Frame, resolve_columns
from service.estimators.paths import member
from service.estimators.pipeline import (
    final_estimator,
    fit_steps,
    make_pipeline,
    partial_fit_model,
)
from service.estimators.table import Table

PARAMETERS = "$.parameters"


class FittedModel(Protocol):
    """What `update_model` needs of the current version (a `FitResult` is one)."""

    @property
    def estimator(self) -> Pipeline: ...
    @property
    def model_type(self) -> str: ...
    @property
    def settings(self) -> Mapping[str, Any]: ...
    @property
    def features(self) -> Sequence[str]: ...
    @property
    def feature_kinds(self) -> Mapping[str, FeatureKind]: ...
    @property
    def target(self) -> str | None: ...
    @property
    def classes(self) -> Sequence[Any] | None: ...
    @property
    def rows(self) -> int: ...


@dataclass(frozen=True)
class FitResult:
    """A fitted pipeline and what a version records about it.

    `rows` counts the training rows the model has seen (for an update: the previous count plus
    the new rows). `classes` are the class labels of a classifier, else None. `metrics` map
    a metric name to its held-out value (empty when evaluation was skipped).
    """

    estimator: Pipeline
    model_type: str
    settings: dict[str, Any]
    features: list[str]
    feature_kinds: dict[str, FeatureKind]
    target: str | None
    classes: list[Any] | None
    metrics: dict[str, float]
    rows: int
    warnings: list[str] = field(default_factory=list)


def fit_model(
    model_type: str,
    settings: Mapping[str, Any] | None,
    features: Sequence[str] | None,
    target: str | None,
    data: Table | Sequence[Mapping[str, Any]],
    *,
    catalogue: Catalogue,
    fit_params: Mapping[str, Any] | None = None,
    eval_fraction: float = 0.2,
    eval_min_rows: int = 20,
    eval_max_rows: int | None = None,
    random_state: int = 0,
    feature_kinds: Mapping[str, FeatureKind] | None = None,
    threads: int | None = None,
) -> FitResult:
    """Fit a fresh estimator of `model_type` on `data`; see the module docstring.

    Evaluation holds out `eval_fraction` of the rows (skipped under `eval_min_rows` rows);
    `eval_max_rows` caps the rows the evaluation uses (None: all), so that on big tables the
    extra evaluation fit costs a bounded fraction of the final fit.

    `threads` caps the OpenMP/BLAS threads of this call (None keeps the libraries' default,
    one per core); on a loaded host a cap avoids heavy oversubscription slowdowns.
    """
    model = catalogue.build(model_type, settings)  # InvalidInput for an unknown type too
    kind = catalogue.get(model_type)
    assert kind is not None
    effective = _seed(model, dict(settings or {}), random_state)
    frame = _frame(data)
    chosen = resolve_columns(frame, features, target, supervised=kind.supervised)
    kinds = _kinds(frame, chosen, feature_kinds)
    allow_nan = bool(model.__sklearn_tags__().input_tags.allow_nan)
    X = frame.features(chosen, kinds, allow_nan=allow_nan)
    y = _target(frame, target, kind) if kind.supervised else None
    params = _fit_params(model, "fit", fit_params, reserved=())
    ordered = [kinds[name] for name in chosen]

    def fit(X_part: Any, y_part: Any, params_part: Mapping[str, Any]) -> Pipeline:
        pipeline = make_pipeline(clone(model), ordered)
        fit_steps(pipeline, X_part, y_part, params_part)
        return pipeline

    metrics: dict[str, float] = {}
    with _recorded() as messages, _thread_limit(threads):
        split = holdout_split(
            len(frame),
            y,
            kind.task,
            fraction=eval_fraction,
            min_rows=eval_min_rows,
            max_rows=eval_max_rows,
            seed=random_state,
        )
        if split is not None:
            metrics, failure = holdout_metrics(fit, kind.task, X, y, params, split)
            if failure:
                warnings.warn(failure, RuntimeWarning, stacklevel=1)
        with _fitting(model_type):
            pipeline = make_pipeline(model, ordered)
            fit_steps(pipeline, X, y, params)
    return FitResult(
        estimator=pipeline,
        model_type=model_type,
        settings=effective,
        features=chosen,
        feature_kinds=kinds,
        target=target if kind.supervised else None,
        classes=_classes(final_estimator(pipeline), kind.task),
        metrics=metrics,
        rows=len(frame),
        warnings=messages,
    )


def supports_partial_fit(estimator: Pipeline) -> bool:
    """Whether `update_model` can continue this fitted model (else refit with fit_model)."""
    return hasattr(final_estimator(estimator), "partial_fit")


def update_model(
    previous: FittedModel,
    data: Table | Sequence[Mapping[str, Any]],
    *,
    fit_params: Mapping[str, Any] | None = None,
    eval_fraction: float = 0.2,
    eval_min_rows: int = 20,
    eval_max_rows: int | None = None,
    random_state: int = 0,
    threads: int | None = None,
) -> FitResult:
    """Continue `previous` with `partial_fit` on the new rows; `previous` is not modified."""
    if not supports_partial_fit(previous.estimator):
        raise Conflict(f"{previous.model_type} models are updated by refitting, not by partial_fit")
    model = final_estimator(previous.estimator)
    task = task_of(model)
    frame = _frame(data)
    features = list(previous.features)
    missing = frame.missing(features)
    if previous.target is not None and frame.missing([previous.target]):
        missing.append(previous.target)
    if missing:
        raise InvalidInput(
            "missing columns",
            [FieldError(frame.table.path, f"missing column {name!r}") for name in missing],
        )
    allow_nan = bool(model.__sklearn_tags__().input_tags.allow_nan)
    X = frame.features(features, previous.feature_kinds, allow_nan=allow_nan)
    y = None
    params = _fit_params(model, "partial_fit", fit_params, reserved=("classes",))
    if previous.target is not None:
        y = frame.target(previous.target, numeric=task == mt.REGRESSION)
        if previous.classes is not None:
            _check_classes(frame, previous.target, y, previous.classes)
            if "classes" in inspect.signature(model.partial_fit).parameters:
                params["classes"] = np.asarray(previous.classes)

    def fit(X_part: Any, y_part: Any, params_part: Mapping[str, Any]) -> Pipeline:
        pipeline = copy.deepcopy(previous.estimator)
        partial_fit_model(pipeline, X_part, y_part, params_part)
        return pipeline

    metrics: dict[str, float] = {}
    with _recorded() as messages, _thread_limit(threads):
        split = holdout_split(
            len(frame),
            y,
            task,
            fraction=eval_fraction,
            min_rows=eval_min_rows,
            max_rows=eval_max_rows,
            seed=random_state,
        )
        if split is not None:
            metrics, failure = holdout_metrics(fit, task, X, y, params, split)
            if failure:
                warnings.warn(failure, RuntimeWarning, stacklevel=1)
        with _fitting(previous.model_type):
            pipeline = fit(X, y, params)
    return FitResult(
        estimator=pipeline,
        model_type=previous.model_type,
        settings=dict(previous.settings),
        features=features,
        feature_kinds=dict(previous.feature_kinds),
        target=previous.target,
        classes=_classes(final_estimator(pipeline), task),
        metrics=metrics,
        rows=previous.rows + len(frame),
        warnings=messages,
    )


def library_versions() -> dict[str, str]:
    """Versions a stored model depends on (for a version's `library_versions`)."""
    import scipy

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }


def _frame(data: Table | Sequence[Mapping[str, Any]]) -> Frame:
    table = data if isinstance(data, Table) else Table.from_records(data)
    if not len(table):
        raise InvalidInput("no data", [FieldError(table.path, "no rows to train on")])
    return Frame(table)


def _seed(model: Any, settings: dict[str, Any], random_state: int) -> dict[str, Any]:
    params = model.get_params(deep=False)
    if "random_state" not in settings and params.get("random_state", False) is None:
        model.set_params(random_state=random_state)
        settings["random_state"] = random_state
    return settings


def _kinds(
    frame: Frame, features: list[str], given: Mapping[str, FeatureKind] | None
) -> dict[str, FeatureKind]:
    inferred = frame.kinds([name for name in features if not given or name not in given])
    return {name: (given[name] if given and name in given else inferred[name]) for name in features}


def _target(frame: Frame, target: str | None, kind: mt.ModelType) -> np.ndarray:
    assert target is not None  # resolve_columns checked it
    return frame.target(target, numeric=kind.task == mt.REGRESSION)


def _fit_params(
    model: Any, method: str, fit_params: Mapping[str, Any] | None, reserved: Sequence[str]
) -> dict[str, Any]:
    params = dict(fit_params or {})
    signature = inspect.signature(getattr(model, method))
    accepted = [
        name
        for name, p in signature.parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name not in ("X", "y", "Y")
    ]
    open_ended = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    errors = []
    for key in params:
        if key in ("X", "y", "Y") or key in reserved:
            errors.append(FieldError(member(PARAMETERS, key), "set by the service"))
        elif key not in accepted and not open_ended:
            shown = ", ".join(name for name in accepted if name not in reserved) or "nothing"
            msg = f"unknown parameter of {type(model).__name__}.{method} (it accepts: {shown})"
            errors.append(FieldError(member(PARAMETERS, key), msg))
    if errors:
        raise InvalidInput("invalid fit parameters", errors)
    return params


def _check_classes(frame: Frame, target: str, y: np.ndarray, classes: Sequence[Any]) -> None:
    known = set(classes)
    unseen = [i for i, label in enumerate(y.tolist()) if label not in known]
    if unseen:
        msg = f"class not seen at the first training (known classes: {list(classes)!r})"
        raise InvalidInput(
            f"new classes in {target!r}",
            [FieldError(frame.table.cell(i, target), msg) for i in unseen[:20]],
        )


def _classes(model: Any, task: str) -> list[Any] | None:
    if task != mt.CLASSIFICATION or not hasattr(model, "classes_"):
        return None
    return list(np.asarray(model.classes_).tolist())


@contextmanager
def _recorded() -> Iterator[list[str]]:
    """Catch every warning inside; the list fills with unique messages on exit."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield messages
    seen = dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught)
    messages.extend(seen)


@contextmanager
def _thread_limit(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    with threadpool_limits(limits=threads):
        yield


@contextmanager
def _fitting(model_type: str) -> Iterator[None]:
    """Turn whatever scikit-learn raises while fitting into an EstimatorError."""
    try:
        yield
    except DomainError:
        raise
    except Exception as exc:  # scikit-learn's failures have many classes; the message matters
        raise EstimatorError(model_type, str(exc) or type(exc).__name__) from exc
