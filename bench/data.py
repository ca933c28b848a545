"""Reference data, shipped with scikit-learn (no download), as API records."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.datasets import load_diabetes, load_iris

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris() -> tuple[list[str], str, list[dict[str, Any]]]:
    data = load_iris()
    names = data.target_names
    records = [
        {**dict(zip(IRIS_FEATURES, map(float, row), strict=True)), "species": str(names[t])}
        for row, t in zip(data.data, data.target, strict=True)
    ]
    return IRIS_FEATURES, "species", records


def diabetes() -> tuple[list[str], str, list[dict[str, Any]]]:
    data = load_diabetes()
    features = list(data.feature_names)
    records = [
        {**{f: float(v) for f, v in zip(features, row, strict=True)}, "progression": float(t)}
        for row, t in zip(data.data, data.target, strict=True)
    ]
    return features, "progression", records


def rows_of(records: list[dict[str, Any]], features: list[str], n: int) -> list[dict[str, Any]]:
    """`n` feature-only records, cycling through the data set."""
    return [{f: records[i % len(records)][f] for f in features} for i in range(n)]


def synthetic(rows: int, columns: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A regression problem: `rows` × `columns` float features and a noisy linear target."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, columns)).round(6)
    y = (X @ rng.normal(size=columns) + rng.normal(scale=0.1, size=rows)).round(6)
    return X, y


def records_of(X: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    names = [f"x{j}" for j in range(X.shape[1])]
    return [
        {**dict(zip(names, row, strict=True)), "y": target}
        for row, target in zip(X.tolist(), y.tolist(), strict=True)
    ]
