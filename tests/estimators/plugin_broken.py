"""A plugin whose `register` fails (it adds a type that already exists), for the error path."""

from __future__ import annotations

from service.estimators.catalogue import Catalogue


def register(catalogue: Catalogue) -> None:
    existing = catalogue.get("sklearn.linear_model.LinearRegression")
    assert existing is not None
    catalogue.add(existing, lambda settings: None)
