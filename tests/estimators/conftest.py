"""Shared fixtures: one catalogue per session and small tables built from scikit-learn's iris."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from service.estimators.catalogue import Catalogue, load_catalogue
from service.estimators.table import Table
from tests.iris import IRIS_FEATURES, iris_records


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="session")
def iris() -> Table:
    return Table.from_records(iris_records())


@pytest.fixture(scope="session")
def iris_numeric() -> Table:
    """The four features only, as rows."""
    records = iris_records()
    return Table(IRIS_FEATURES, [[r[f] for f in IRIS_FEATURES] for r in records])


@pytest.fixture(scope="package", autouse=True)
def one_thread_per_library() -> Iterator[None]:
    """OpenMP/BLAS on one thread: on a loaded 2-core host, OpenMP spin-waits make small
    fits (HistGradientBoosting on iris) ten times slower than single-threaded."""
    with threadpool_limits(limits=1):
        yield
