"""Constraint → JSON Schema mapping, JSON defaults, settings coercion and docstring text."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils._param_validation import HasMethods, Hidden, Interval, Options, StrOptions

from service.estimators.docstrings import parameter_descriptions, summary
from service.estimators.schema import coerce_settings, parameter_schema, to_json


@pytest.mark.parametrize(
    ("constraints", "default", "expected"),
    [
        ([Interval(Integral, 1, None, closed="left")], 100, {"type": "integer", "minimum": 1}),
        (
            [Interval(Real, 0, 1, closed="right")],
            0.5,
            {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        ),
        ([StrOptions({"b", "a"})], "a", {"enum": ["a", "b"]}),
        (["boolean"], True, {"type": "boolean"}),
        ([None, "array-like"], None, {"type": ["null", "array"]}),
        (
            ["random_state"],
            None,
            {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 2**32 - 1}, {"type": "null"}]},
        ),
        (["verbose"], 0, {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "boolean"}]}),
        ([dict, str], None, {"type": ["object", "string"]}),
        (
            [Interval(Integral, 0, None, closed="left"), Options(Real, {np.inf})],
            np.inf,
            {"type": "integer", "minimum": 0},  # infinity has no JSON form
        ),
        ("no_validation", None, {}),
    ],
)
def test_constraints_become_a_json_schema_per_parameter(
    constraints: Any, default: Any, expected: dict[str, Any]
) -> None:
    schema = parameter_schema(constraints, default)
    assert schema is not None
    schema.pop("default", None)
    assert schema == expected


def test_object_only_parameters_have_no_schema() -> None:
    assert parameter_schema([HasMethods(["fit"]), None], None) is None
    assert parameter_schema([callable], np.mean) is None
    assert parameter_schema([Options(Real, {np.inf})], np.inf) is None


def test_hidden_options_only_when_the_default_needs_them() -> None:
    constraints = [StrOptions({"squared_error"}), Hidden(StrOptions({"deprecated"}))]
    schema = parameter_schema(constraints, "deprecated")
    assert schema == {
        "anyOf": [{"enum": ["squared_error"]}, {"enum": ["deprecated"]}],
        "default": "deprecated",
        "deprecated": True,
    }
    assert parameter_schema(constraints, "squared_error") == {
        "enum": ["squared_error"],
        "default": "squared_error",
    }


def test_defaults_are_converted_to_json_or_marked_unrepresentable() -> None:
    assert to_json((1, 2)) == [1, 2]
    assert to_json(np.float32(0.5)) == 0.5 and to_json(np.int64(3)) == 3
    assert to_json(np.bool_(True)) is True
    assert to_json({"a": (1,)}) == {"a": [1]}
    for value in (math.nan, math.inf, np.float64, np.mean, {1: "x"}, object()):
        assert parameter_schema("no_validation", value) == {}  # no JSON form, so no default


@settings(max_examples=50, deadline=None)  # no flaky deadlines on a busy host
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
))  # fmt: skip
def test_json_values_are_their_own_json_form(value: Any) -> None:
    assert to_json(value) == value


def test_coerce_settings_makes_tuples_where_needed() -> None:
    assert coerce_settings(MinMaxScaler, {"feature_range": [0, 2]}) == {"feature_range": (0, 2)}
    assert coerce_settings(MinMaxScaler, {"copy": False}) == {"copy": False}
    unchanged = coerce_settings(LogisticRegression, {"class_weight": {"a": 1}})
    assert unchanged == {"class_weight": {"a": 1}}


def test_descriptions_come_from_the_docstring_as_plain_text() -> None:
    text = summary(LogisticRegression)
    assert text.startswith("Logistic Regression (aka logit, MaxEnt) classifier. This class")
    assert ":class:" not in text and "``" not in text
    descriptions = parameter_descriptions(LogisticRegression)
    assert descriptions["C"].startswith("Inverse of regularization strength")
    assert "sphx_glr" not in descriptions["C"]
    assert set(LogisticRegression().get_params()) <= set(descriptions)
