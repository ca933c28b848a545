"""Value texts → Python values of a column's type, checked so PostgreSQL accepts every one.

Each converter returns what asyncpg encodes for the parameter cast in `types.PARAM_CAST`, and
raises BadRequest for anything PostgreSQL (or asyncpg, before sending) would reject: integers
beyond int64, non-finite floats, dates outside what a timestamptz holds, NUL bytes.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone

from service.query.limits import INT64_MAX, INT64_MIN, MAX_WHERE_CHARS, bad, check_text, show
from service.query.types import ColumnType

# Patterns are ASCII-only on purpose: Python's int()/float() also accept other scripts' digits,
# underscores, surrounding spaces, "nan" and "inf".
_INTEGER = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}")
# RFC 3339 date-time; also a bare date (midnight UTC), a space for "T", no seconds, no offset.
_TIMESTAMP = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})"
    r"(?:[Tt ](?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:\.(?P<f>[0-9]+))?)?"
    r"(?P<tz>[Zz]|[+-][0-9]{2}:[0-9]{2})?)?"
)


def to_integer(text: str, where: str) -> int:
    if _INTEGER.fullmatch(text):
        value = int(text)
        if INT64_MIN <= value <= INT64_MAX:
            return value
        raise ValueError(f"{where}: {show(text)} is outside the 64-bit integer range")
    raise ValueError(f"{where}: expected an integer, got {show(text)}")


def to_float(text: str, where: str) -> float:
    if _FLOAT.fullmatch(text):
        value = float(text)
        if math.isfinite(value):
            return value
        raise ValueError(f"{where}: {show(text)} is outside the floating-point range")
    raise ValueError(f"{where}: expected a number, got {show(text)}")


def to_boolean(text: str, where: str) -> bool:
    word = text.lower() if text.isascii() else ""
    if word in ("true", "false"):
        return word == "true"
    raise ValueError(f"{where}: expected true or false, got {show(text)}")


def to_uuid(text: str, where: str) -> uuid.UUID:
    if _UUID.fullmatch(text):
        return uuid.UUID(text)
    raise ValueError(f"{where}: expected a UUID, got {show(text)}")


def to_timestamp(text: str, where: str) -> datetime:
    """An aware UTC datetime; a missing offset means UTC."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"{where}: expected an RFC 3339 timestamp, got {show(text)}")
    part = match.groupdict()
    tz = UTC
    if part["tz"] and part["tz"] not in ("Z", "z"):
        sign = -1 if part["tz"][0] == "-" else 1
        hours, minutes = int(part["tz"][1:3]), int(part["tz"][4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f"{where}: invalid UTC offset in {show(text)}")
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        value = datetime(
            int(part["y"]),
            int(part["mo"]),
            int(part["d"]),
            int(part["h"] or 0),
            int(part["mi"] or 0),
            int(part["s"] or 0),
            int((part["f"] or "0")[:6].ljust(6, "0")),  # PostgreSQL keeps microseconds
            tzinfo=tz,
        )
        # Normalise now: asyncpg would do it while encoding, and overflow there (year 1 at
        # +05:00, year 9999 at -05:00) would escape as a 500 instead of this 400.
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"{where}: {show(text)} is not a valid date and time") from None


def to_text(text: str, where: str) -> str:
    return text


CONVERTERS: Mapping[ColumnType, Callable[[str, str], object]] = {
    ColumnType.TEXT: to_text,
    ColumnType.TEXT_ARRAY: to_text,  # the element CONTAINS looks for
    ColumnType.INTEGER: to_integer,
    ColumnType.FLOAT: to_float,
    ColumnType.BOOLEAN: to_boolean,
    ColumnType.TIMESTAMP: to_timestamp,
    ColumnType.UUID: to_uuid,
}


def convert(loc: str, column: str, type_: ColumnType, text: str) -> object:
    """`text` as a value of `type_` for column `column`; BadRequest at `loc` when it does not fit.

    Texts are checked again here (not only in the parser) because a Query may be built by hand.
    """
    check_text(loc, text, MAX_WHERE_CHARS)
    converter = CONVERTERS.get(type_)
    if converter is None:
        raise bad(loc, f"column {show(column)} ({type_.value}) cannot be compared with a value")
    try:
        return converter(text, f"column {show(column)} ({type_.value})")
    except ValueError as error:
        raise bad(loc, str(error)) from None
