"""JSON Schema for an estimator's settings, derived from scikit-learn's own parameter metadata.

`settings_schema(cls)` turns `get_params()` defaults and `_parameter_constraints` into a JSON
Schema object (`additionalProperties: false`). Contract, per constructor parameter:

- Each constraint maps to the JSON forms that can express it: `Interval` → integer/number with
  bounds, `StrOptions`/`Options` → `enum`, `"boolean"` → boolean, `None` → null,
  `"random_state"` → integer in [0, 2**32-1] or null, `"verbose"` → integer ≥ 0 or boolean,
  `"cv_object"` → integer ≥ 2 or null, `"array-like"`/`list`/`tuple` → array, `dict` → object,
  `"no_validation"` (or no constraint at all) → any JSON value. Constraints that only Python
  objects satisfy (estimators, callables, kernels, classes, RandomState, sparse matrices, NaN)
  have no JSON form and are dropped.
- A parameter whose constraints leave no JSON form other than `null` is an *object parameter*:
  it is left out of the schema and keeps scikit-learn's default (AdaBoost's `estimator`,
  SelectKBest's `score_func`, ...). `object_parameters(cls)` lists them.
- Hidden constraints (scikit-learn's internal or transitional options, such as `"deprecated"`)
  are kept only when the default needs them, so that the default is valid under the schema;
  a parameter whose default is `"deprecated"` carries `"deprecated": true`.
- `"default"` is the JSON form of the `get_params()` default: tuples become arrays, numpy
  scalars plain numbers. A default JSON cannot hold (NaN, infinity, a class such as
  `numpy.float64`, a function) is omitted, and the `description` says which Python value
  scikit-learn uses. Omitting the key keeps that default; JSON `null` means Python `None`,
  which scikit-learn does not treat as NaN.
- `description` is the first paragraph of the parameter's entry in the class docstring.

`coerce_settings` applies the one JSON→Python conversion scikit-learn's validation needs: a
JSON array for a parameter that accepts a tuple but not a list or array-like becomes a tuple.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import sklearn.utils._param_validation as pv

from service.estimators.docstrings import parameter_descriptions

JsonSchema = dict[str, Any]

_NOT_JSON = object()  # marker: the value has no JSON form


def settings_schema(cls: type[Any], defaults: Mapping[str, Any]) -> JsonSchema:
    """The JSON Schema object for `cls`'s settings; `defaults` is `cls().get_params(deep=False)`."""
    constraints: Mapping[str, Any] = getattr(cls, "_parameter_constraints", {}) or {}
    docs = parameter_descriptions(cls)
    properties: dict[str, JsonSchema] = {}
    for name, default in defaults.items():
        prop = parameter_schema(constraints.get(name, "no_validation"), default)
        if prop is None:
            continue
        description = docs.get(name, "")
        if "default" not in prop:
            note = f"Default: {default!r} (not representable in JSON; omit the key to keep it)."
            description = f"{description} {note}".strip()
        if description:
            prop["description"] = description
        properties[name] = prop
    return {"type": "object", "properties": properties, "additionalProperties": False}


def object_parameters(cls: type[Any], defaults: Mapping[str, Any]) -> frozenset[str]:
    """Parameters that only Python objects can set (left out of the schema)."""
    constraints: Mapping[str, Any] = getattr(cls, "_parameter_constraints", {}) or {}
    return frozenset(
        name
        for name, default in defaults.items()
        if parameter_schema(constraints.get(name, "no_validation"), default) is None
    )


def parameter_schema(constraints: Any, default: Any) -> JsonSchema | None:
    """Schema of one parameter, or None when JSON can express nothing but `null` for it."""
    json_default = to_json(default)
    if constraints == "no_validation":
        return {} if json_default is _NOT_JSON else {"default": json_default}
    alternatives: list[JsonSchema] = []
    for raw in constraints:
        constraint = pv.make_constraint(raw)
        if getattr(constraint, "hidden", False) and not _satisfied(constraint, default):
            continue
        for alternative in _constraint_schemas(constraint):
            if alternative not in alternatives:
                alternatives.append(alternative)
    if all(alternative == {"type": "null"} for alternative in alternatives):
        return None
    schema = _merge(alternatives)
    if json_default is not _NOT_JSON:
        schema["default"] = json_default
    if default == "deprecated":
        schema["deprecated"] = True
    return schema


def coerce_settings(cls: type[Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` with JSON arrays turned into tuples where scikit-learn wants a tuple."""
    constraints: Mapping[str, Any] = getattr(cls, "_parameter_constraints", {}) or {}
    coerced = dict(settings)
    for name, value in settings.items():
        allowed = constraints.get(name)
        if not isinstance(value, list) or allowed in (None, "no_validation"):
            continue
        wants_tuple = tuple in allowed
        takes_list = list in allowed or "array-like" in allowed
        if wants_tuple and not takes_list:
            coerced[name] = tuple(value)
    return coerced


def to_json(value: Any) -> Any:
    """The JSON form of a Python default, or the private `_NOT_JSON` marker."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else _NOT_JSON
    if isinstance(value, (list, tuple)):
        items = [to_json(item) for item in value]
        return _NOT_JSON if any(item is _NOT_JSON for item in items) else items
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        entries = {key: to_json(item) for key, item in value.items()}
        return _NOT_JSON if any(item is _NOT_JSON for item in entries.values()) else entries
    return _NOT_JSON


def has_json_form(value: Any) -> bool:
    """Whether `to_json(value)` gives a JSON value."""
    return to_json(value) is not _NOT_JSON


def _satisfied(constraint: Any, value: Any) -> bool:
    try:
        return bool(constraint.is_satisfied_by(value))
    except Exception:  # a constraint that cannot judge this value does not accept it
        return False


def _constraint_schemas(constraint: Any) -> list[JsonSchema]:
    """The JSON alternatives of one scikit-learn constraint object (possibly none)."""
    if isinstance(constraint, pv.Interval):
        return [_interval_schema(constraint)]
    if isinstance(constraint, pv.Options):
        values = [to_json(option) for option in constraint.options]
        values = [value for value in values if value is not _NOT_JSON]
        return [{"enum": sorted(values, key=repr)}] if values else []
    if isinstance(constraint, pv._Booleans):
        return [{"type": "boolean"}]
    if isinstance(constraint, pv._NoneConstraint):
        return [{"type": "null"}]
    if isinstance(constraint, pv._VerboseHelper):
        return [{"type": "integer", "minimum": 0}, {"type": "boolean"}]
    if isinstance(constraint, pv._ArrayLikes | pv._IterablesNotString):
        return [{"type": "array"}]
    if isinstance(constraint, pv._InstancesOf):
        return _instance_schemas(constraint.type)
    nested = getattr(constraint, "_constraints", None)  # random_state, cv_object, missing_values
    if nested is not None:
        return [schema for inner in nested for schema in _constraint_schemas(inner)]
    return []  # callables, HasMethods, sparse matrices, NaN: Python objects only


def _instance_schemas(kind: type[Any]) -> list[JsonSchema]:
    if kind in (bool, np.bool_):
        return [{"type": "boolean"}]
    if kind is np.random.RandomState:
        return []
    if issubclass(kind, numbers.Integral):
        return [{"type": "integer"}]
    if issubclass(kind, numbers.Real):
        return [{"type": "number"}]
    if kind is str:
        return [{"type": "string"}]
    if kind in (dict, Mapping):
        return [{"type": "object"}]
    if kind in (list, tuple, np.ndarray):
        return [{"type": "array"}]
    return []


def _interval_schema(interval: Any) -> JsonSchema:
    schema: JsonSchema = {"type": "integer" if interval.type is numbers.Integral else "number"}
    left, right, closed = interval.left, interval.right, interval.closed
    if left is not None and math.isfinite(left):
        key = "minimum" if closed in ("left", "both") else "exclusiveMinimum"
        schema[key] = to_json(left)
    if right is not None and math.isfinite(right):
        key = "maximum" if closed in ("right", "both") else "exclusiveMaximum"
        schema[key] = to_json(right)
    return schema


def _merge(alternatives: list[JsonSchema]) -> JsonSchema:
    """One schema from alternatives: a single one as is, plain types as a type list, else anyOf."""
    if not alternatives:
        return {}
    if len(alternatives) == 1:
        return dict(alternatives[0])
    if all(set(alternative) == {"type"} for alternative in alternatives):
        return {"type": [alternative["type"] for alternative in alternatives]}
    return {"anyOf": alternatives}
