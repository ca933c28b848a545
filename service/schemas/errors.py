"""Where a msgspec `ValidationError` points: its message split from its `$.path`."""

from __future__ import annotations

import msgspec


def split_validation_error(exc: msgspec.ValidationError) -> tuple[str, str]:
    """`Expected `int`, got `str` - at `$.a[0]`` → (`Expected `int`, got `str``, `$.a[0]`);
    the path is `$` when msgspec names none."""
    text, sep, where = str(exc).rpartition(" - at `")
    if not sep:
        return str(exc), "$"
    return text, where.rstrip("`")
