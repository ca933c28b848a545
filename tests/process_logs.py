"""Read what a `python -m service` process wrote: every line one JSON object, none twice."""

from __future__ import annotations

from typing import Any

import msgspec


def json_lines(output: str) -> list[dict[str, Any]]:
    """Each line decoded as a JSON object; fails naming the first line that is not one."""
    entries = []
    for line in output.splitlines():
        try:
            entry = msgspec.json.decode(line)
        except msgspec.DecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
        assert isinstance(entry, dict), f"not a JSON object: {line!r}"
        entries.append(entry)
    return entries


def repeated(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries that say the same thing as an earlier one (the timestamp aside)."""
    seen: set[bytes] = set()
    repeats = []
    for entry in entries:
        key = msgspec.json.encode({k: v for k, v in sorted(entry.items()) if k != "ts"})
        if key in seen:
            repeats.append(entry)
        seen.add(key)
    return repeats
