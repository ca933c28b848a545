"""Training: `fit_model` (train, and the refit form of update); `update_model` (partial_fit)
lives in `updating.py` and is re-exported here.

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
- `FitResult.settings_used` holds every hyperparameter of the fitted estimator, defaults
  included, as JSON; `on_phase` hears `Phase.EVALUATING` and `Phase.FITTING` as they start.

Update. `update_model` continues an incremental model (`supports_partial_fit`) with
`partial_fit` on the new rows only: the encoding step stays as fitted at the first training,
the feature kinds and target are the previous version's, and for classifiers the classes are
fixed: `classes=` the ones observed at the first training is passed to `partial_fit`, and a
new row with another class raises `InvalidInput` naming the target cell. A non-incremental
update is a refit and is the caller's job: `fit_model` on
`previous_training_rows.concat(new_rows)` with the same settings, features and target.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sklearn
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from service.estimators import model_type as mt
from service.estimators.catalogue import Catalogue
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
from service.estimators.frame import FeatureKind, Frame, resolve_columns
from service.estimators.phases import PhaseReport
from service.estimators.pipeline import final_estimator, fit_steps, make_pipeline
from service.estimators.results import FitResult, FittedModel
from service.estimators.table import Table
from service.estimators.updating import supports_partial_fit, update_model

__all__ = [
    "FitResult",
    "FittedModel",
    "fit_model",
    "library_versions",
    "supports_partial_fit",
    "update_model",
]


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
    on_phase: PhaseReport | None = None,
) -> FitResult:
    """Fit a fresh estimator of `model_type` on `data`; see the module docstring.

    Evaluation holds out `eval_fraction` of the rows (skipped under `eval_min_rows` rows);
    `eval_max_rows` caps the rows the evaluation uses (None: all), so that on big tables the
    extra evaluation fit costs a bounded fraction of the final fit. `feature_kinds` overrides
    the inferred kind of the features it names.

    `threads` caps the OpenMP/BLAS threads of this call and the estimator's `n_jobs` (None
    keeps the libraries' default, one per core); on a loaded host a cap avoids heavy
    oversubscription slowdowns.
    """
    model = catalogue.build(model_type, settings)  # InvalidInput for an unknown type too
    clamp_jobs(model, threads)
    kind = catalogue.get(model_type)
    assert kind is not None
    effective = _seed(model, dict(settings or {}), random_state)
    frame = frame_of(data)
    chosen = resolve_columns(frame, features, target, supervised=kind.supervised)
    kinds = _kinds(frame, chosen, feature_kinds)
    X = frame.features(chosen, kinds, allow_nan=accepts_nan(model))
    y = None
    if kind.supervised:
        assert target is not None  # resolve_columns checked it
        y = frame.target(target, numeric=kind.task == mt.REGRESSION)
    params = checked_fit_params(model, "fit", fit_params)
    ordered = [kinds[name] for name in chosen]
    fresh = clone(model)

    def fit(X_part: Any, y_part: Any, params_part: Mapping[str, Any]) -> Pipeline:
        pipeline = make_pipeline(clone(fresh), ordered)
        fit_steps(pipeline, X_part, y_part, params_part)
        return pipeline

    pipeline, metrics, messages = run(
        fit,
        model_type=model_type,
        task=kind.task,
        X=X,
        y=y,
        params=params,
        evaluation=Evaluation(eval_fraction, eval_min_rows, eval_max_rows, random_state),
        threads=threads,
        on_phase=on_phase,
    )
    return FitResult(
        estimator=pipeline,
        model_type=model_type,
        settings=effective,
        features=chosen,
        feature_kinds=kinds,
        target=target if kind.supervised else None,
        classes=class_labels(final_estimator(pipeline), kind.task),
        metrics=metrics,
        rows=len(frame),
        warnings=messages,
        settings_used=settings_used(final_estimator(pipeline)),
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
