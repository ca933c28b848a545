"""The base of every wire type."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

import msgspec


class ApiStruct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=False):
    """Request and response bodies.

    `forbid_unknown_fields`: a misspelt field is a 422, not silently ignored.
    `kw_only`: fields are named at every construction site, so adding one breaks nothing.
    """


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}(?!\n)$"
"""Names of models and datasets (API.md): no `/`, no spaces, nothing a path could confuse.
`(?!\n)`: Python's `$` also matches before a final newline, and msgspec searches the pattern,
so without it `"iris\n"` would be a name (one no path could reach)."""

Name = Annotated[
    str,
    msgspec.Meta(
        pattern=NAME_PATTERN,
        description="Letters, digits, `_`, `.` and `-`; starts with a letter or digit; "
        "at most 128 characters.",
        examples=["iris"],
    ),
]
Text = Annotated[str, msgspec.Meta(max_length=10_000)]
ShortText = Annotated[str, msgspec.Meta(max_length=1_000)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=100)]
ColumnName = Annotated[str, msgspec.Meta(min_length=1, max_length=63, pattern=r"^[^\x00]+$")]
# Versions are PostgreSQL `integer`s: a larger number in a body is a 422, not an overflow.
VersionNumber = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]

T = TypeVar("T")


class Page(ApiStruct, Generic[T]):
    """A page of a list: `total` counts every match, `items` holds at most `limit` of them."""

    items: list[T]
    total: int
    limit: int
    offset: int
