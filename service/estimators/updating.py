"""Update by `partial_fit`: continue an incremental model on new rows only.

The encoding step stays as fitted at the first training (a new text category encodes as all
zeros), the features, their kinds and the target are the previous version's, and for
classifiers the classes are fixed: `classes=` the ones observed at the first training goes to
`partial_fit`, and a new row with another class raises `InvalidInput` naming its target
cell. Evaluation, warnings and errors work as in `fit_model`. The previous pipeline is never
modified: each fit works on a deep copy.

A non-incremental update is a refit, and the caller's job: `fit_model` on
`previous_training_rows.concat(new_rows)` with the same settings, features and target.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from service.domain.errors import Conflict, FieldError, InvalidInput
from service.estimators import model_type as mt
from service.estimators.describe import task_of
from service.estimators.fitting import (
    Evaluation,
    accepts_nan,
    checked_fit_params,
    clamp_jobs,
    class_labels,
    frame_of,
    run,
    settings_used,
)
from service.estimators.frame import MAX_ERRORS, Frame
from service.estimators.phases import PhaseReport
from service.estimators.pipeline import final_estimator, partial_fit_model
from service.estimators.results import FitResult, FittedModel
from service.estimators.table import Table


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
    on_phase: PhaseReport | None = None,
) -> FitResult:
    """Continue `previous` with `partial_fit` on the rows of `data`; `previous` is unchanged.

    Raises Conflict when the model cannot `partial_fit` (see `supports_partial_fit`).
    """
    if not supports_partial_fit(previous.estimator):
        raise Conflict(f"{previous.model_type} models are updated by refitting, not by partial_fit")
    model = final_estimator(previous.estimator)
    task = task_of(model)
    frame = frame_of(data)
    _check_columns(frame, previous)
    X = frame.features(previous.features, previous.feature_kinds, allow_nan=accepts_nan(model))
    y = None
    params = checked_fit_params(model, "partial_fit", fit_params, reserved=("classes",))
    if previous.target is not None:
        y = frame.target(previous.target, numeric=task == mt.REGRESSION)
        if previous.classes is not None:
            _check_classes(frame, previous.target, y, previous.classes)
            if "classes" in inspect.signature(model.partial_fit).parameters:
                params["classes"] = np.asarray(previous.classes)

    def fit(X_part: Any, y_part: Any, params_part: Mapping[str, Any]) -> Pipeline:
        pipeline = copy.deepcopy(previous.estimator)
        clamp_jobs(final_estimator(pipeline), threads)
        partial_fit_model(pipeline, X_part, y_part, params_part)
        return pipeline

    pipeline, metrics, messages = run(
        fit,
        model_type=previous.model_type,
        task=task,
        X=X,
        y=y,
        params=params,
        evaluation=Evaluation(eval_fraction, eval_min_rows, eval_max_rows, random_state),
        threads=threads,
        on_phase=on_phase,
    )
    return FitResult(
        estimator=pipeline,
        model_type=previous.model_type,
        settings=dict(previous.settings),
        features=list(previous.features),
        feature_kinds=dict(previous.feature_kinds),
        target=previous.target,
        classes=class_labels(final_estimator(pipeline), task),
        metrics=metrics,
        rows=previous.rows + len(frame),
        warnings=messages,
        settings_used=settings_used(final_estimator(pipeline)),
    )


def _check_columns(frame: Frame, previous: FittedModel) -> None:
    missing = frame.missing(previous.features)
    if previous.target is not None and frame.missing([previous.target]):
        missing.append(previous.target)
    if missing:
        raise InvalidInput(
            "missing columns",
            [FieldError(frame.table.path, f"missing column {name!r}") for name in missing],
        )


def _check_classes(frame: Frame, target: str, y: np.ndarray, classes: Sequence[Any]) -> None:
    known = set(classes)
    unseen = [i for i, label in enumerate(y.tolist()) if label not in known]
    if unseen:
        msg = f"class not seen at the first training (known classes: {list(classes)!r})"
        raise InvalidInput(
            f"new classes in {target!r}",
            [FieldError(frame.table.cell(i, target), msg) for i in unseen[:MAX_ERRORS]],
        )
