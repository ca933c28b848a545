"""Query-string and path parameters, parsed once and named in errors."""

from __future__ import annotations

import re
import uuid

from starlette.requests import Request

from service.domain.errors import BadRequest, FieldError, NotFound


def multi_params(request: Request) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        grouped.setdefault(key, []).append(value)
    return grouped


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def path_str(request: Request, name: str) -> str:
    """A name in the path. One that no resource can have (NUL bytes, `..`, 300 characters)
    is a 404 here, before it reaches a query."""
    value: str = request.path_params[name]
    if not _NAME.match(value) or value in (".", ".."):
        shown = value[:100].encode("unicode_escape").decode()
        raise NotFound(f"no {name.replace('_', ' ')} '{shown}' exists")
    return value


def path_uuid(request: Request, name: str, what: str) -> uuid.UUID:
    raw = path_str(request, name)
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"{what} '{raw[:100]}' does not exist") from None


def path_int(request: Request, name: str, what: str) -> int:
    raw = path_str(request, name)
    if not raw.isdigit() or len(raw) > 9:
        raise NotFound(f"{what} '{raw[:100]}' does not exist")
    return int(raw)


def single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"'{name}' may be given once", [FieldError(name, "repeated")])
    return values[0]


def paging(
    params: dict[str, list[str]], default_limit: int = 100, max_limit: int = 10_000
) -> tuple[int, int]:
    """`limit` and `offset` only; any other parameter is refused by name."""
    for name in params:
        if name not in ("limit", "offset"):
            raise BadRequest(f"unknown parameter '{name}'", [FieldError(name, "not accepted here")])
    limit = _bounded_int(params, "limit", default_limit, max_limit)
    offset = _bounded_int(params, "offset", 0, 2**62)
    return limit, offset


def _bounded_int(params: dict[str, list[str]], name: str, default: int, maximum: int) -> int:
    raw = single(params, name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 19 or int(raw) > maximum:
        raise BadRequest(
            f"'{name}' must be an integer from 0 to {maximum}", [FieldError(name, raw[:50])]
        )
    return int(raw)
