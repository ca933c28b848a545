"""The steps `fit_model` and `update_model` share: input checks, evaluation then final fit
with warnings recorded, phases reported, threads capped and scikit-learn's failures turned
into `EstimatorError`; and the settings a fitted estimator really used."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from service.domain.errors import DomainError, FieldError, InvalidInput
from service.estimators import model_type as mt
from service.estimators.errors import EstimatorError
from service.estimators.evaluation import Fit, holdout_metrics, holdout_split
from service.estimators.frame import Frame
from service.estimators.paths import member
from service.estimators.phases import Phase, PhaseReport
from service.estimators.schema import has_json_form, to_json
from service.estimators.table import Table

PARAMETERS = "$.parameters"
_DATA_ARGUMENTS = ("X", "y", "Y")
MAX_WARNINGS = 20
MAX_WARNING_CHARS = 500


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Held-out evaluation options (see `evaluation.py`); `seed` also seeds the split."""

    fraction: float = 0.2
    min_rows: int = 20
    max_rows: int | None = None
    seed: int = 0


def run(
    fit: Fit,
    *,
    model_type: str,
    task: str,
    X: Any,
    y: np.ndarray | None,
    params: Mapping[str, Any],
    evaluation: Evaluation,
    threads: int | None,
    on_phase: PhaseReport | None = None,
) -> tuple[Pipeline, dict[str, float], list[str]]:
    """Evaluate on a held-out split, then fit on every row: (pipeline, metrics, warnings).

    `on_phase` hears `EVALUATING` before the held-out fit (when there is one) and `FITTING`
    before the final fit."""
    report = on_phase or _ignore
    metrics: dict[str, float] = {}
    with recorded_warnings() as messages, _thread_limit(threads):
        split = holdout_split(
            len(X),
            y,
            task,
            fraction=evaluation.fraction,
            min_rows=evaluation.min_rows,
            max_rows=evaluation.max_rows,
            seed=evaluation.seed,
        )
        if split is not None:
            report(Phase.EVALUATING)
            metrics, failure = holdout_metrics(fit, task, X, y, params, split)
            if failure:
                warnings.warn(failure, RuntimeWarning, stacklevel=1)
        report(Phase.FITTING)
        try:
            pipeline = fit(X, y, params)
        except (DomainError, MemoryError):  # a MemoryError is the worker's limit, not the model's
            raise
        except Exception as exc:  # scikit-learn's failures have many classes; the text matters
            raise EstimatorError(model_type, str(exc) or type(exc).__name__) from exc
    return pipeline, metrics, messages


def frame_of(data: Table | Sequence[Mapping[str, Any]]) -> Frame:
    """A frame over the data (records convert to a table); no rows raises InvalidInput."""
    table = data if isinstance(data, Table) else Table.from_records(data)
    if not len(table):
        raise InvalidInput("no data", [FieldError(table.path, "no rows to train on")])
    return Frame(table)


def checked_fit_params(
    model: Any, method: str, fit_params: Mapping[str, Any] | None, reserved: Sequence[str] = ()
) -> dict[str, Any]:
    """`fit_params` when `model.<method>` accepts them; else InvalidInput per bad key."""
    params = dict(fit_params or {})
    signature = inspect.signature(getattr(model, method))
    accepted = [
        name
        for name, p in signature.parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name not in _DATA_ARGUMENTS
    ]
    open_ended = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    errors = []
    for key in params:
        if key in _DATA_ARGUMENTS or key in reserved:
            errors.append(FieldError(member(PARAMETERS, key), "set by the service"))
        elif key not in accepted and not open_ended:
            shown = ", ".join(name for name in accepted if name not in reserved) or "nothing"
            msg = f"unknown parameter of {type(model).__name__}.{method} (it accepts: {shown})"
            errors.append(FieldError(member(PARAMETERS, key), msg))
    if errors:
        raise InvalidInput("invalid fit parameters", errors)
    return params


def class_labels(model: Any, task: str) -> list[Any] | None:
    """A fitted classifier's classes as JSON values, else None."""
    if task != mt.CLASSIFICATION or not hasattr(model, "classes_"):
        return None
    return list(np.asarray(model.classes_).tolist())


def accepts_nan(model: Any) -> bool:
    """scikit-learn's `allow_nan` tag."""
    return bool(model.__sklearn_tags__().input_tags.allow_nan)


def clamp_jobs(estimator: Any, threads: int | None) -> None:
    """Every `n_jobs` of `estimator` at most `threads` (-1 and other negatives, "one per
    core", become `threads`); None keeps joblib's default, one. Nothing when `threads` is None.

    joblib starts a thread or a process per job whatever the BLAS/OpenMP caps say; the value
    set here is the one the version's `settings` show."""
    if threads is None or not hasattr(estimator, "get_params"):
        return
    jobs = estimator.get_params(deep=False).get("n_jobs")
    if isinstance(jobs, int) and not isinstance(jobs, bool) and (jobs < 0 or jobs > threads):
        estimator.set_params(n_jobs=threads)


def settings_used(estimator: Any) -> dict[str, Any]:
    """Every constructor parameter of a fitted estimator, defaults included, as JSON values.

    Values JSON cannot hold (estimators, callables, NaN) are left out, as in the type's
    settings schema: what is shown can be sent back as settings."""
    get_params = getattr(estimator, "get_params", None)
    if get_params is None:  # a plugin's estimator need not follow scikit-learn's API
        return {}
    params: dict[str, Any] = get_params(deep=False)
    return {name: to_json(value) for name, value in params.items() if has_json_form(value)}


@contextmanager
def recorded_warnings() -> Iterator[list[str]]:
    """Catch every warning inside; the list fills with unique messages on exit.

    Each message is "Category: message", cut to MAX_WARNING_CHARS; at most MAX_WARNINGS are
    kept, the last one then saying how many more there were (a fit in a loop can warn
    thousands of times). `warnings.catch_warnings` is process-global: use it where one fit
    runs at a time (the worker's child process), never around concurrent predictions."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield messages
    seen = list(dict.fromkeys(_shorten(f"{w.category.__name__}: {w.message}") for w in caught))
    if len(seen) > MAX_WARNINGS:
        hidden = len(seen) - (MAX_WARNINGS - 1)
        seen = [*seen[: MAX_WARNINGS - 1], f"... and {hidden} more distinct warnings"]
    messages.extend(seen)


def _shorten(message: str) -> str:
    if len(message) <= MAX_WARNING_CHARS:
        return message
    return message[: MAX_WARNING_CHARS - 1] + "…"


def _ignore(phase: Phase) -> None:
    return None


@contextmanager
def _thread_limit(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    with threadpool_limits(limits=threads):
        yield
