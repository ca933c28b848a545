"""The catalogue: every model type the service can build from JSON settings.

`load_catalogue(plugins)` discovers the installed scikit-learn's estimators
(`sklearn.utils.all_estimators()`, filtered and described by `describe.py`) and then loads
each plugin module.

Plugin protocol. The `[models] plugins` setting lists importable module names. Each module
exposes `register(catalogue: Catalogue) -> None`, which calls
`catalogue.add(model_type, factory)` once per type it contributes:

- `model_type` is a `ModelType` whose name is not taken yet (for a scikit-learn compatible
  class, `describe_estimator(cls, name="acme.MyModel")` derives one, and `SklearnFactory(cls)`
  is a ready factory);
- `factory(settings: dict) -> estimator` returns an unfitted estimator for the settings. It
  runs after the keys were checked against `model_type.hyperparameters` (when that schema
  says `additionalProperties: false`); it may raise `InvalidInput`, and a `ValueError` or
  `TypeError` it raises becomes an `InvalidInput` on `$.settings`. When the estimator has
  scikit-learn's `_parameter_constraints`, those are checked as for built-in types.

The estimator must follow the scikit-learn estimator API (a `BaseEstimator` subclass: params,
tags, `fit` and `predict`/`transform`), since training wraps, clones and inspects it, and it
must be picklable and importable from the plugin module by both the API and the worker, so
every process must list the same plugins. An import error, a missing `register`,
or an exception inside it (a duplicate name, ...) raises `PluginError` naming the module.
See `tests/estimators/plugin_example.py`.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from sklearn.utils import all_estimators
from sklearn.utils._param_validation import InvalidParameterError, validate_parameter_constraints

from service.domain.errors import FieldError, InvalidInput
from service.estimators.describe import describe_estimator, exclusion_reason, public_name
from service.estimators.errors import PluginError
from service.estimators.limits import SettingLimits, limit_errors, limited_schema
from service.estimators.model_type import ModelType
from service.estimators.paths import member
from service.estimators.schema import coerce_settings, object_parameters

Factory = Callable[[dict[str, Any]], Any]

SETTINGS = "$.settings"
_PARAMETER_IN_MESSAGE = re.compile(r"The '(\w+)' parameter")


@dataclass(frozen=True, slots=True)
class _Entry:
    model_type: ModelType
    factory: Factory
    object_parameters: frozenset[str] = frozenset()


class SklearnFactory:
    """Builds `cls` with default settings, then `set_params(**settings)` (JSON coerced)."""

    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls

    def __call__(self, settings: dict[str, Any]) -> Any:
        estimator = self.cls()
        if settings:
            estimator.set_params(**coerce_settings(self.cls, settings))
        return estimator


class Catalogue:
    """A registry of model types by name; `discover()` fills it from scikit-learn.

    `excluded` maps each scikit-learn estimator that discovery left out to the reason.
    The `ModelType`s are shared between catalogues of one process: treat them as read-only.
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self.excluded: dict[str, str] = {}
        self.limits = SettingLimits()

    def limit(self, limits: SettingLimits) -> None:
        """Caps the settings that size a fit (see `limits.py`) in every type's schema and in
        `build`; call it once every type is in."""
        self.limits = limits
        for name, entry in self._entries.items():
            schema = limited_schema(entry.model_type.hyperparameters, limits)
            limited = msgspec.structs.replace(entry.model_type, hyperparameters=schema)
            self._entries[name] = _Entry(limited, entry.factory, entry.object_parameters)

    def add(self, model_type: ModelType, factory: Factory) -> None:
        """Register a type; a name already taken raises ValueError."""
        if not isinstance(model_type, ModelType):
            raise TypeError(f"expected a ModelType, got {type(model_type).__name__}")
        if model_type.name in self._entries:
            raise ValueError(f"model type {model_type.name!r} is already registered")
        if not callable(factory):
            raise TypeError(f"the factory of {model_type.name!r} is not callable")
        objects: frozenset[str] = frozenset()
        if isinstance(factory, SklearnFactory):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                defaults = factory.cls().get_params(deep=False)
            objects = object_parameters(factory.cls, defaults)
        self._entries[model_type.name] = _Entry(model_type, factory, objects)

    def discover(self) -> None:
        """Add every scikit-learn estimator that `exclusion_reason` accepts.

        The discovery runs once per process (it imports all of scikit-learn and takes about
        two seconds); later catalogues reuse its frozen results.
        """
        entries, excluded = _discovered()
        for entry in entries:
            if entry.model_type.name not in self._entries:
                self._entries[entry.model_type.name] = entry
        self.excluded.update(excluded)

    def get(self, name: str) -> ModelType | None:
        entry = self._entries.get(name)
        return entry.model_type if entry else None

    def all(self) -> list[ModelType]:
        """Every type, sorted by name."""
        return [self._entries[name].model_type for name in sorted(self._entries)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[ModelType]:
        return iter(self.all())

    def build(self, name: str, settings: Mapping[str, Any] | None = None) -> Any:
        """An unfitted estimator of type `name` with `settings` (JSON values), validated.

        Raises `InvalidInput` with one `FieldError` per bad key: `$.model_type` for an unknown
        type, `$.settings.<key>` for an unknown key, a key JSON cannot set, or a value
        scikit-learn rejects (the message is scikit-learn's). Combinations of values that only
        fit() checks surface later, as `EstimatorError`.
        """
        entry = self._entries.get(name)
        if entry is None:
            raise InvalidInput(
                f"unknown model type {name!r}", [FieldError("$.model_type", "unknown model type")]
            )
        settings = dict(settings or {})
        errors = _key_errors(entry, settings)
        errors += limit_errors(settings, entry.model_type.hyperparameters, self.limits)
        if errors:
            raise InvalidInput(f"invalid settings for {name}", errors)
        try:
            estimator = entry.factory(settings)
        except InvalidInput:
            raise
        except InvalidParameterError as exc:
            raise InvalidInput(f"invalid settings for {name}", [_parameter_error(exc)]) from exc
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"invalid settings for {name}", [FieldError(SETTINGS, str(exc))]
            ) from exc
        errors = _value_errors(estimator, settings)
        if errors:
            raise InvalidInput(f"invalid settings for {name}", errors)
        return estimator

    def validate(self, name: str, settings: Mapping[str, Any] | None = None) -> None:
        """The checks of `build`, for a create or update request; returns nothing."""
        self.build(name, settings)


@functools.cache
def _discovered() -> tuple[tuple[_Entry, ...], dict[str, str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimators = all_estimators()
    scratch = Catalogue()
    excluded: dict[str, str] = {}
    for _, cls in estimators:
        name = public_name(cls)
        reason = exclusion_reason(cls)
        if reason is not None:
            excluded[name] = reason
        elif name not in scratch:
            scratch.add(describe_estimator(cls, name=name), SklearnFactory(cls))
    return tuple(scratch._entries.values()), excluded


def load_catalogue(plugins: Sequence[str] = (), limits: SettingLimits | None = None) -> Catalogue:
    """The scikit-learn catalogue plus the types of each plugin module, in order, with the
    settings `limits` applied."""
    catalogue = Catalogue()
    catalogue.discover()
    for module in plugins:
        load_plugin(catalogue, module)
    if limits is not None:
        catalogue.limit(limits)
    return catalogue


def load_plugin(catalogue: Catalogue, module_name: str) -> None:
    """Import `module_name` and call its `register(catalogue)`; failures raise PluginError."""
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raises at import
        raise PluginError(module_name, f"cannot be imported: {exc!r}") from exc
    register = getattr(module, "register", None)
    if not callable(register):
        raise PluginError(module_name, "has no register(catalogue) function")
    try:
        register(catalogue)
    except Exception as exc:  # a bad plugin must not start a half-configured service
        raise PluginError(module_name, f"failed to register: {exc}") from exc


def _key_errors(entry: _Entry, settings: Mapping[str, Any]) -> list[FieldError]:
    schema = entry.model_type.hyperparameters
    properties: Mapping[str, Any] = schema.get("properties", {})
    closed = schema.get("additionalProperties") is False
    errors = []
    for key in settings:
        if key in entry.object_parameters:
            msg = (
                "cannot be set in JSON settings: it takes a Python object, "
                "so scikit-learn's default is used"
            )
        elif closed and key not in properties:
            close = difflib.get_close_matches(key, list(properties), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            msg = f"unknown setting for {entry.model_type.name}{hint}"
        else:
            continue
        errors.append(FieldError(member(SETTINGS, key), msg))
    return errors


def _value_errors(estimator: Any, settings: Mapping[str, Any]) -> list[FieldError]:
    """scikit-learn's validation, key by key (to report every bad key), then as a whole."""
    constraints = getattr(estimator, "_parameter_constraints", None)
    if not isinstance(constraints, dict):
        return []
    params = estimator.get_params(deep=False)
    errors = []
    for key in settings:
        if key not in constraints or key not in params:
            continue
        try:
            validate_parameter_constraints(
                {key: constraints[key]}, {key: params[key]}, caller_name=type(estimator).__name__
            )
        except InvalidParameterError as exc:
            errors.append(FieldError(member(SETTINGS, key), str(exc)))
    if errors:
        return errors
    try:
        estimator._validate_params()
    except InvalidParameterError as exc:
        return [_parameter_error(exc)]
    return []


def _parameter_error(exc: InvalidParameterError) -> FieldError:
    match = _PARAMETER_IN_MESSAGE.search(str(exc))
    return FieldError(member(SETTINGS, match.group(1)) if match else SETTINGS, str(exc))
