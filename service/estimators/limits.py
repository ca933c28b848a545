"""Maxima for the settings that size a fit's memory or time, whatever the model type.

`n_estimators=1e8`, `PolynomialFeatures(degree=60)` or an MLP with `[100000, 100000]` hidden
units are valid to scikit-learn and would take the worker's machine down. `SettingLimits` names
a largest value per setting name (also the largest item of an array setting, such as
`hidden_layer_sizes`) and a longest array; `limited_schema` writes them into a type's JSON
Schema as `maximum`/`maxItems`, and `limit_errors` checks settings against them, so most bombs
are refused when the model is created, before anything is queued. The worker's child process
limits (memory, CPU time, threads) catch what is left.

`dtype` settings (the encoders') take any JSON value to scikit-learn: here only the names of
numeric numpy types, since a string type such as "U1000000000" is a bomb of its own.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.domain.errors import FieldError
from service.estimators.paths import item, member

JsonSchema = dict[str, Any]

SETTINGS = "$.settings"
DTYPES = (
    "float64",
    "float32",
    "float16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint64",
    "uint32",
    "uint16",
    "uint8",
    "bool",
)
# `[models.limits]` keys that are not a setting's own name.
_ITEM_KEYS = {"hidden_layer_size": "hidden_layer_sizes"}
_LENGTH_KEYS = {"hidden_layers": "hidden_layer_sizes"}


@dataclass(frozen=True, slots=True)
class SettingLimits:
    maxima: Mapping[str, float] = field(default_factory=dict)  # setting → largest (item) value
    max_items: Mapping[str, int] = field(default_factory=dict)  # array setting → longest

    @classmethod
    def of(cls, configured: Mapping[str, int]) -> SettingLimits:
        """From the `[models.limits]` table: a setting's name, or `hidden_layer_size` (each
        layer) and `hidden_layers` (how many) for `hidden_layer_sizes`."""
        maxima: dict[str, float] = {}
        max_items: dict[str, int] = {}
        for key, value in configured.items():
            if key in _LENGTH_KEYS:
                max_items[_LENGTH_KEYS[key]] = value
            else:
                maxima[_ITEM_KEYS.get(key, key)] = value
        return cls(maxima, max_items)


def limited_schema(schema: JsonSchema, limits: SettingLimits) -> JsonSchema:
    """A copy of a type's settings schema with the limits of the settings it has."""
    properties: Mapping[str, JsonSchema] = schema.get("properties", {})
    limited = dict(properties)
    for name, prop in properties.items():
        if name == "dtype" and _unconstrained(prop):
            limited[name] = {**prop, "enum": list(DTYPES)}
        elif name in limits.maxima or name in limits.max_items:
            maximum = limits.maxima.get(name)
            limited[name] = _capped(copy.deepcopy(prop), maximum, limits.max_items.get(name))
    return {**schema, "properties": limited} if properties else schema


def limit_errors(
    settings: Mapping[str, Any], schema: JsonSchema, limits: SettingLimits
) -> list[FieldError]:
    """One error per setting of `settings` beyond `limits` (only settings the type has)."""
    properties: Mapping[str, JsonSchema] = schema.get("properties", {})
    errors = []
    for name, value in settings.items():
        if name not in properties:
            continue
        loc = member(SETTINGS, name)
        if name == "dtype" and properties[name].get("enum") == list(DTYPES):
            if value not in DTYPES:
                errors.append(FieldError(loc, f"must be one of {', '.join(DTYPES)}"))
            continue
        maximum = limits.maxima.get(name)
        if maximum is not None and _number(value) and value > maximum:
            errors.append(FieldError(loc, _too_big(maximum)))
        elif isinstance(value, list):
            longest = limits.max_items.get(name)
            if longest is not None and len(value) > longest:
                errors.append(FieldError(loc, f"at most {longest} items here (models.limits)"))
            if maximum is not None:
                errors.extend(
                    FieldError(item(loc, i), _too_big(maximum))
                    for i, entry in enumerate(value)
                    if _number(entry) and entry > maximum
                )
    return errors


def _too_big(maximum: float) -> str:
    shown = int(maximum) if float(maximum).is_integer() else maximum
    return f"at most {shown} here (models.limits), to bound the fit's memory and time"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _unconstrained(prop: JsonSchema) -> bool:
    return not ({"type", "enum", "anyOf"} & set(prop))


def _capped(prop: JsonSchema, maximum: float | None, max_items: int | None) -> JsonSchema:
    if "anyOf" in prop:
        prop["anyOf"] = [_capped(alternative, maximum, max_items) for alternative in prop["anyOf"]]
        return prop
    kinds = prop.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if maximum is not None and ({"integer", "number"} & set(kinds)):
        prop["maximum"] = _lower(prop.get("maximum"), maximum)
    if "array" in kinds:
        if maximum is not None:
            items = dict(prop.get("items", {}))
            items["maximum"] = _lower(items.get("maximum"), maximum)
            prop["items"] = items
        if max_items is not None:
            prop["maxItems"] = int(_lower(prop.get("maxItems"), max_items))
    return prop


def _lower(current: float | None, limit: float) -> float:
    value = limit if current is None else min(current, limit)
    return int(value) if float(value).is_integer() and math.isfinite(value) else value
