"""`If-Match` (RFC 9110 §13.1.1) in, `ETag` out, for the registry's state-changing routes."""

from __future__ import annotations

import re

from starlette.requests import Request

from service.domain.errors import BadRequest, FieldError
from service.domain.preconditions import IfMatch
from service.http.operation import Param

IF_MATCH = Param(
    name="If-Match",
    where="header",
    schema={"type": "string", "example": '"r42"'},
    description="Change only if the resource still has this `ETag` (or any, with `*`); "
    "otherwise 412 and nothing changes.",
)

# One entity tag of a list (empty elements allowed): optional weak prefix, then a quoted string.
_TAG = re.compile(r'(?:\s*,)*\s*(W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(?:,\s*)*(?:,|$)')


def if_match(request: Request) -> IfMatch | None:
    """The request's condition, or None when it sends no `If-Match`."""
    values = request.headers.getlist("if-match")
    if not values:
        return None
    raw = ", ".join(values)
    if raw.strip() == "*":
        return IfMatch(None)
    tags: set[str] = set()
    at = 0
    while at < len(raw):
        found = _TAG.match(raw, at)
        if found is None or found.end() == at:
            raise BadRequest(
                "If-Match must be `*` or a list of quoted entity tags",
                [FieldError("If-Match", raw[:100])],
            )
        if found.group(1) is None:  # a weak tag never matches under strong comparison
            tags.add(found.group(2))
        at = found.end()
    return IfMatch(frozenset(tags))
