"""Columns of datasets: which names are allowed, how types are inferred, how values convert.

Names. A column name is 1 to 63 bytes of UTF-8 (PostgreSQL's identifier limit: longer names
would be silently truncated), without control characters (NUL included). Names starting with
`__` are reserved for the service (every dataset table has a hidden `__row` column), and the
PostgreSQL system column names (`ctid`, `xmin`, `xmax`, `cmin`, `cmax`, `tableoid`) cannot be
used. Names are case-sensitive and always quoted in SQL, so any other text is fine.

Types. `integer` (64-bit), `float` (double precision), `boolean`, `text` and `timestamp` (with
time zone). A column's type is declared, or inferred from its non-null values: all `true` /
`false` → boolean; all integers within 64 bits → integer; numbers → float; all RFC 3339 dates
or date-times → timestamp; anything else (mixed kinds included) → text; no values → text.
JSON values are inferred from their JSON types; CSV values from their text (`1` is an integer
there, quoted or not: declare the column `text` to keep it as text).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from service.domain.errors import FieldError, InvalidInput
from service.estimators.paths import item, member
from service.query.values import to_timestamp
from service.schemas.datasets import MAX_COLUMNS, ColumnSpec, ColumnTypeName

MAX_NAME_BYTES = 63
RESERVED_PREFIX = "__"
SYSTEM_COLUMNS = frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
_FLOAT = re.compile(
    r"\s*[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)\s*",
    re.IGNORECASE,
)
_DATE_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_BOOLEANS = {"true": True, "false": False}
_DRIVER_INFINITIES = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a column name, or None when it can."""
    if not name:
        return "a column name cannot be empty"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "a column name must be valid Unicode text"
    if size > MAX_NAME_BYTES:
        return f"a column name is at most {MAX_NAME_BYTES} bytes of UTF-8 (this one has {size})"
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        return "a column name cannot contain control characters"
    if name.startswith(RESERVED_PREFIX):
        return f"column names starting with {RESERVED_PREFIX!r} are reserved"
    if name in SYSTEM_COLUMNS:
        return f"{name!r} is a PostgreSQL system column name"
    return None


def check_names(names: Sequence[str], loc: Callable[[int], str]) -> None:
    """InvalidInput listing every bad or repeated name; `loc(i)` locates the i-th name."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, name in enumerate(names):
        problem = name_problem(name)
        if problem is None and name in seen:
            problem = f"column {name!r} appears twice"
        if problem is not None:
            errors.append(FieldError(loc(i), problem))
        seen.add(name)
    if len(names) > MAX_COLUMNS:
        errors.append(FieldError(loc(MAX_COLUMNS), f"at most {MAX_COLUMNS} columns"))
    if errors:
        raise InvalidInput("invalid column names", errors[:20])


# -- inference --------------------------------------------------------------------------------


def unify(kinds: Iterable[ColumnTypeName]) -> ColumnTypeName:
    """One type for a column whose values have these kinds (see the module docstring)."""
    found = set(kinds)
    if len(found) == 1:
        return found.pop()
    if found and found <= {"integer", "float"}:
        return "float"
    return "text"


def looks_like_timestamp(text: str) -> bool:
    if not 10 <= len(text) <= 40 or not _DATE_START.match(text):
        return False
    try:
        to_timestamp(text, "value")
    except ValueError:
        return False
    return True


def json_kind(value: Any) -> ColumnTypeName | None:
    """The type a JSON value suggests; None for null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer" if INT64_MIN <= value <= INT64_MAX else "float"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str) and looks_like_timestamp(value):
        return "timestamp"
    return "text"


def text_kind(text: str) -> ColumnTypeName | None:
    """The type a CSV field suggests; None for an empty field (null)."""
    if text == "":
        return None
    if text.strip().lower() in _BOOLEANS:
        return "boolean"
    if _INTEGER.fullmatch(text):
        return "integer" if INT64_MIN <= int(text) <= INT64_MAX else "float"
    if _FLOAT.fullmatch(text):
        return "float"
    if looks_like_timestamp(text.strip()):
        return "timestamp"
    return "text"


def infer(
    names: Sequence[str],
    rows: Iterable[Sequence[Any]],
    kind: Callable[[Any], ColumnTypeName | None],
    declared: Mapping[str, ColumnTypeName],
) -> list[ColumnSpec]:
    """Types of `names` from `rows` (aligned with `names`), declared types taking precedence."""
    open_columns = [i for i, name in enumerate(names) if name not in declared]
    kinds: dict[int, set[ColumnTypeName]] = {i: set() for i in open_columns}
    for row in rows:
        for i in open_columns:
            if i < len(row) and (k := kind(row[i])) is not None:
                kinds[i].add(k)
    return [
        ColumnSpec(name=name, type=declared[name] if name in declared else unify(kinds[i]))
        for i, name in enumerate(names)
    ]


# -- JSON values → PostgreSQL values ----------------------------------------------------------

Converter = Callable[[Any], Any]


def _integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if INT64_MIN <= value <= INT64_MAX:
            return value
        raise ValueError("is outside the 64-bit integer range")
    raise ValueError(f"expected an integer, got {_json_type(value)}")


def _float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an integer literal of 309 digits or more
            raise ValueError("is outside the floating-point range") from None
    raise ValueError(f"expected a number, got {_json_type(value)}")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {_json_type(value)}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = repr(value) if isinstance(value, float) else str(value)
    if "\x00" in text:
        raise ValueError("text cannot contain a NUL character")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("is not valid Unicode text") from None
    return text


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str):
        stamp = to_timestamp(value, "value")
        if stamp in _DRIVER_INFINITIES:  # asyncpg would store them as -infinity / infinity
            raise ValueError("is at the very edge of the timestamp range; use a later/earlier one")
        return stamp
    raise ValueError(f"expected an RFC 3339 timestamp (a string), got {_json_type(value)}")


CONVERTERS: Mapping[ColumnTypeName, Converter] = {
    "integer": _integer,
    "float": _float,
    "boolean": _boolean,
    "text": _text,
    "timestamp": _timestamp,
}


def to_rows(
    records: Sequence[Mapping[str, Any]], columns: Sequence[ColumnSpec], *, known_only: bool
) -> list[tuple[Any, ...]]:
    """Records as tuples of `columns` values; a missing key is null. InvalidInput names the
    first bad cells (`$.data[i].column`), and with `known_only` keys that are not columns."""
    names = [c.name for c in columns]
    converters = [CONVERTERS[c.type] for c in columns]
    known = frozenset(names)
    rows: list[tuple[Any, ...]] = []
    errors: list[FieldError] = []
    for i, record in enumerate(records):
        if known_only and not record.keys() <= known:
            for key in sorted(record.keys() - known):
                errors.append(FieldError(member(item("$.data", i), key), "not a column"))
        row: list[Any] = []
        for name, convert in zip(names, converters, strict=True):
            value = record.get(name)
            try:
                row.append(None if value is None else convert(value))
            except ValueError as exc:
                errors.append(FieldError(member(item("$.data", i), name), str(exc)))
        if len(errors) >= 20:
            break
        rows.append(tuple(row))
    if errors:
        raise InvalidInput("rows do not fit the columns", errors[:20])
    return rows


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__
