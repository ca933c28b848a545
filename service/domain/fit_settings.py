"""The settings a training or update job fits with.

A request's `settings` are for the version it makes only: they are merged over the model's and
the merge is checked as a model's settings are at creation (`Catalogue.validate`, limits
included), before the job is stored, so a bad value is a 422 rather than a failed job. The
model's own settings never change here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.domain.errors import FieldError, InvalidInput
from service.estimators.catalogue import SETTINGS, Catalogue
from service.estimators.paths import member


def fit_settings(
    catalogue: Catalogue,
    model_type: str,
    model_settings: Mapping[str, Any],
    override: Mapping[str, Any],
    *,
    incremental: bool = False,
) -> dict[str, Any]:
    """The model's settings with `override` merged over them, validated.

    An incremental update goes on from the current estimator with `partial_fit`, which cannot
    change a hyperparameter the estimator was built with, so it takes no override."""
    if incremental:
        if override:
            raise InvalidInput(
                "an incremental update continues the current version's estimator, which keeps"
                " its settings; train a new version to change them",
                [FieldError(SETTINGS, "must be empty or left out for an update by partial_fit")],
            )
        return dict(model_settings)
    merged = {**model_settings, **override}
    try:
        catalogue.validate(model_type, merged)
    except InvalidInput as exc:
        errors = [_attributed(error, model_settings, override) for error in exc.errors]
        raise InvalidInput(exc.detail, errors) from exc
    return merged


def _attributed(
    error: FieldError, model_settings: Mapping[str, Any], override: Mapping[str, Any]
) -> FieldError:
    """A bad value the request did not send is the model's, valid when the model was created
    but not under today's limits: say so, since the request can override it."""
    for key in model_settings:
        if key in override:
            continue
        loc = member(SETTINGS, key)
        if error.loc == loc or error.loc.startswith(f"{loc}["):
            return FieldError(
                error.loc, f"{error.msg} (the model's value; override it in `settings`)"
            )
    return error
