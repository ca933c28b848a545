"""Query-string, path and header parameters: the shared declarations and their parsing."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from service.domain.errors import BadRequest, FieldError, NotFound
from service.http.operation import Param
from service.schemas.base import NAME_PATTERN

_STR: Mapping[str, Any] = {"type": "string"}

WHERE = Param(
    name="where",
    where="query",
    schema=_STR,
    description="`column operator value`, e.g. `task = classification`",
    repeated=True,
)
WHERE_BOOLEAN = Param(
    name="where_boolean",
    where="query",
    schema={"type": "string", "enum": ["AND", "OR"]},
    description="How `where` terms combine (default AND)",
)
LIMIT = Param(
    name="limit",
    where="query",
    schema={"type": "integer", "minimum": 0, "maximum": 10000},
    description="Page size (default 100)",
)
OFFSET = Param(
    name="offset",
    where="query",
    schema={"type": "integer", "minimum": 0},
    description="Rows to skip",
)
LIST_PARAMS = (
    WHERE,
    WHERE_BOOLEAN,
    Param(
        name="select",
        where="query",
        schema=_STR,
        description="Columns to return (default all)",
        repeated=True,
    ),
    Param(
        name="order_by", where="query", schema=_STR, description="Columns to sort by", repeated=True
    ),
    Param(
        name="order_by_sort",
        where="query",
        schema={"type": "string", "enum": ["asc", "desc"]},
        description="Direction per `order_by` column (default asc)",
        repeated=True,
    ),
    LIMIT,
    OFFSET,
)
PAGING = (LIMIT, OFFSET)
MODEL_NAME = Param(
    name="name", where="path", schema={**_STR, "example": "iris"}, description="Model name"
)
IDEMPOTENCY_KEY = Param(
    name="Idempotency-Key",
    where="header",
    schema={"type": "string", "maxLength": 255},
    description="Repeat a submission safely: the same key and body return the first response; "
    "the same key with another body is a 422.",
)


def multi_params(request: Request) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        grouped.setdefault(key, []).append(value)
    return grouped


_NAME = re.compile(NAME_PATTERN)


def path_str(request: Request, name: str) -> str:
    """A name in the path. One that no resource can have (NUL bytes, `..`, 300 characters)
    is a 404 here, before it reaches a query."""
    value: str = request.path_params[name]
    if not _NAME.fullmatch(value) or value in (".", ".."):
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


def only(params: dict[str, list[str]], allowed: tuple[Param, ...], hint: str) -> None:
    """Refuse, by name, any query parameter the operation does not declare."""
    names = {p.name for p in allowed}
    for key in params:
        if key not in names:
            raise BadRequest(f"unknown parameter '{key[:40]}'", [FieldError(key[:40], hint)])


def paging(
    params: dict[str, list[str]], default_limit: int = 100, max_limit: int = 10_000
) -> tuple[int, int]:
    """`limit` and `offset` only; any other parameter is refused by name."""
    only(params, PAGING, "not accepted here")
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
