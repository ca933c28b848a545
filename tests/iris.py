"""Small real data sets for tests, shipped with scikit-learn (no download)."""

from __future__ import annotations

from typing import Any

from sklearn.datasets import load_diabetes, load_iris

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris_records() -> list[dict[str, Any]]:
    data = load_iris()
    names = data.target_names
    return [
        {**dict(zip(IRIS_FEATURES, map(float, row), strict=True)), "species": str(names[t])}
        for row, t in zip(data.data, data.target, strict=True)
    ]


def diabetes_records() -> list[dict[str, Any]]:
    data = load_diabetes()
    return [
        {
            **{f: float(v) for f, v in zip(data.feature_names, row, strict=True)},
            "progression": float(t),
        }
        for row, t in zip(data.data, data.target, strict=True)
    ]
