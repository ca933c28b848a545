"""What a fit records beside the model: its warnings, the settings it used, its phases."""

from __future__ import annotations

import math
import warnings

from sklearn.exceptions import ConvergenceWarning

from service.estimators.catalogue import Catalogue
from service.estimators.fitting import (
    MAX_WARNING_CHARS,
    MAX_WARNINGS,
    recorded_warnings,
    settings_used,
)
from service.estimators.phases import PROGRESS, Phase
from service.estimators.table import Table
from service.estimators.training import fit_model, update_model

LOGISTIC = "sklearn.linear_model.LogisticRegression"
SGD = "sklearn.linear_model.SGDClassifier"


def test_a_fit_that_does_not_converge_says_so(catalogue: Catalogue, iris: Table) -> None:
    result = fit_model(LOGISTIC, {"max_iter": 1}, None, "species", iris, catalogue=catalogue)
    converge = [w for w in result.warnings if w.startswith("ConvergenceWarning: ")]
    assert len(converge) == 1  # the evaluation fit and the final fit warn alike: kept once


def test_a_fit_that_converges_has_no_warnings(catalogue: Catalogue, iris: Table) -> None:
    result = fit_model(LOGISTIC, {"max_iter": 1000}, None, "species", iris, catalogue=catalogue)
    assert result.warnings == []


def test_warnings_are_unique_short_and_few() -> None:
    with recorded_warnings() as messages:
        for _ in range(3):
            warnings.warn("same", ConvergenceWarning, stacklevel=1)
        warnings.warn("x" * 10_000, UserWarning, stacklevel=1)
        for i in range(100):
            warnings.warn(f"distinct {i}", RuntimeWarning, stacklevel=1)
    assert len(messages) == MAX_WARNINGS
    assert messages[0] == "ConvergenceWarning: same"
    assert messages[1].startswith("UserWarning: xxx") and len(messages[1]) == MAX_WARNING_CHARS
    assert messages[2] == "RuntimeWarning: distinct 0"
    # 102 distinct messages; 19 are shown, the last entry counts the other 83.
    assert messages[-1] == "... and 83 more distinct warnings"


def test_settings_used_hold_defaults_and_overrides(catalogue: Catalogue, iris: Table) -> None:
    result = fit_model(LOGISTIC, {"max_iter": 300}, None, "species", iris, catalogue=catalogue)
    used = result.settings_used
    assert used["max_iter"] == 300  # the model's own setting
    assert used["random_state"] == 0  # seeded by the service
    assert used["C"] == 1.0 and used["solver"] == "lbfgs"  # scikit-learn's defaults
    assert used == catalogue.build(LOGISTIC, used).get_params(deep=False)  # they can be sent back


def test_settings_json_cannot_hold_are_left_out(catalogue: Catalogue) -> None:
    imputer = catalogue.build("sklearn.impute.SimpleImputer", {"strategy": "median"})
    used = settings_used(imputer)
    assert math.isnan(imputer.missing_values) and "missing_values" not in used
    assert used["strategy"] == "median"
    assert settings_used(object()) == {}  # a plugin's estimator without get_params


def test_phases_are_reported_in_order(catalogue: Catalogue, iris: Table) -> None:
    heard: list[Phase] = []
    fit_model(LOGISTIC, {}, None, "species", iris, catalogue=catalogue, on_phase=heard.append)
    assert heard == [Phase.EVALUATING, Phase.FITTING]
    small: list[Phase] = []
    fit_model(
        LOGISTIC,
        {},
        None,
        "species",
        iris,
        catalogue=catalogue,
        eval_min_rows=1000,
        on_phase=small.append,
    )
    assert small == [Phase.FITTING]  # too few rows to hold some out


def test_updates_report_phases_and_settings(catalogue: Catalogue, iris: Table) -> None:
    first = fit_model(SGD, {"alpha": 0.001}, None, "species", iris, catalogue=catalogue)
    heard: list[Phase] = []
    second = update_model(first, iris, on_phase=heard.append)
    assert heard == [Phase.EVALUATING, Phase.FITTING]
    assert second.settings_used == first.settings_used and second.settings_used["alpha"] == 0.001


def test_progress_rises_with_the_phases() -> None:
    fractions = [PROGRESS[phase] for phase in Phase]
    assert fractions == sorted(fractions) and len(set(fractions)) == len(fractions)
    assert fractions[0] > 0 and fractions[-1] < 1
