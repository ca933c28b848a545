"""Shared fixtures: one catalogue per session and small tables built from scikit-learn's iris."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sklearn.datasets import load_iris
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from service.estimators.catalogue import Catalogue, load_catalogue
from service.estimators.table import Table

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue()


def iris_records() -> list[dict[str, Any]]:
    """150 records: four float features and `species` (text)."""
    iris = load_iris()
    return [
        {**dict(zip(FEATURES, map(float, row), strict=True)), "species": str(name)}
        for row, name in zip(iris.data, iris.target_names[iris.target], strict=True)
    ]


@pytest.fixture(scope="session")
def iris() -> Table:
    return Table.from_records(iris_records())


@pytest.fixture(scope="session")
def iris_numeric() -> Table:
    """The four features only, as rows."""
    records = iris_records()
    return Table(FEATURES, [[r[f] for f in FEATURES] for r in records])


@pytest.fixture(scope="package", autouse=True)
def one_thread_per_library() -> Iterator[None]:
    """OpenMP/BLAS on one thread: on a loaded 2-core host, OpenMP spin-waits make small
    fits (HistGradientBoosting on iris) ten times slower than single-threaded."""
    with threadpool_limits(limits=1):
        yield
