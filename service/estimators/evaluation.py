"""Held-out metrics: fit on a split of the rows, score on the rest, before the final fit.

The split holds out `fraction` of the rows (at least one; of at most `max_rows` rows sampled
when given, to bound the cost on big tables), stratified by class for classifiers
when every class has at least two rows and the held-out part can hold one of each. It is
skipped when `fraction` is 0, when there are fewer than `min_rows` rows, or for transformers
(they have no score). Metrics by task:

- classification: `accuracy`, `f1_macro`;
- regression: `r2` (when at least two rows are held out), `mae`;
- clustering: `silhouette` (when the held-out rows fall into 2 .. n-1 clusters);
- density: `log_likelihood` (mean per held-out row);
- outlier_detection: `outlier_fraction` (share of held-out rows predicted as outliers).

Evaluation is best effort: when scikit-learn fails on the split (a class missing from the
training part, a held-out row with no neighbour within the radius, ...), the metrics are
left out and the reason is returned as a warning; the final fit decides whether training
fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from service.estimators import model_type as mt
from service.estimators.pipeline import apply, encode, final_estimator

Fit = Callable[[Any, Any, Mapping[str, Any]], Pipeline]
"""(X, y, fit_params) → a pipeline fitted on them."""


def holdout_split(
    n: int,
    y: np.ndarray | None,
    task: str,
    *,
    fraction: float,
    min_rows: int,
    seed: int,
    max_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(train indexes, held-out indexes), or None when evaluation is skipped.

    With `max_rows`, a larger table is first sampled down to `max_rows` rows (at random,
    seeded), which bounds the cost of the extra evaluation fit on big data."""
    if task == mt.TRANSFORM or fraction <= 0 or n < max(min_rows, 2):
        return None
    rows = np.arange(n)
    if max_rows is not None and n > max(max_rows, min_rows, 2):
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(n, size=max(max_rows, min_rows, 2), replace=False))
    labels = None if y is None else y[rows]
    size = len(rows)
    held_out = min(max(1, round(size * fraction)), size - 1)
    stratify = None
    if task == mt.CLASSIFICATION and labels is not None:
        _, counts = np.unique(labels, return_counts=True)
        if counts.min() >= 2 and len(counts) <= min(held_out, size - held_out):
            stratify = labels
    train, test = train_test_split(rows, test_size=held_out, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(test)


def holdout_metrics(
    fit: Fit,
    task: str,
    X: Any,
    y: np.ndarray | None,
    fit_params: Mapping[str, Any],
    split: tuple[np.ndarray, np.ndarray],
) -> tuple[dict[str, float], str | None]:
    """Fit on the training part, score on the held-out part: (metrics, failure or None)."""
    train, test = split
    n = len(X) if hasattr(X, "__len__") else X.shape[0]
    try:
        pipeline = fit(X[train], None if y is None else y[train], subset(fit_params, train, n))
        scores = score(pipeline, task, X[test], None if y is None else y[test])
    except MemoryError:  # a limit of the fit, not of the evaluation: the final fit would hit it
        raise
    except Exception as exc:  # best effort: scikit-learn's reason becomes a warning
        return {}, f"held-out evaluation skipped: {type(exc).__name__}: {exc}"
    return {k: v for k, v in scores.items() if math.isfinite(v)}, None


def subset(fit_params: Mapping[str, Any], rows: np.ndarray, n: int) -> dict[str, Any]:
    """`fit_params` with per-row arrays (length n, e.g. sample_weight) cut to `rows`."""
    return {
        key: np.asarray(value)[rows] if _per_row(value, n) else value
        for key, value in fit_params.items()
    }


def _per_row(value: Any, n: int) -> bool:
    return isinstance(value, list | tuple | np.ndarray) and len(value) == n


def score(pipeline: Pipeline, task: str, X: Any, y: np.ndarray | None) -> dict[str, float]:
    """The task's metrics of a fitted pipeline on (X, y)."""
    if not hasattr(final_estimator(pipeline), "predict"):
        return {}  # e.g. LocalOutlierFactor without novelty=True
    if task == mt.CLASSIFICATION:
        predicted = apply(pipeline, "predict", X)
        return {
            "accuracy": float(skm.accuracy_score(y, predicted)),
            "f1_macro": float(skm.f1_score(y, predicted, average="macro", zero_division=0)),
        }
    if task == mt.REGRESSION:
        predicted = apply(pipeline, "predict", X)
        result = {"mae": float(skm.mean_absolute_error(y, predicted))}
        if len(predicted) >= 2:
            result["r2"] = float(skm.r2_score(y, predicted))
        return result
    if task == mt.CLUSTERING:
        encoded = encode(pipeline, X)
        labels = final_estimator(pipeline).predict(encoded)
        if 2 <= len(np.unique(labels)) <= len(labels) - 1:
            return {"silhouette": float(skm.silhouette_score(encoded, labels))}
        return {}
    if task == mt.DENSITY:
        return {"log_likelihood": float(final_estimator(pipeline).score(encode(pipeline, X)))}
    if task == mt.OUTLIER_DETECTION:
        predicted = np.asarray(apply(pipeline, "predict", X))
        return {"outlier_fraction": float(np.mean(predicted == -1))}
    return {}
