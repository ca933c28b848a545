"""JSON paths for `FieldError.loc`: `member("$.settings", "C")` → `$.settings.C`."""

from __future__ import annotations

import json


def member(path: str, key: str) -> str:
    """`path.key` for identifier-like keys, else `path['key']` (JSON-quoted)."""
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def item(path: str, index: int) -> str:
    """`path[index]`."""
    return f"{path}[{index}]"
