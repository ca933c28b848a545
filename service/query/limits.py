"""Input limits and the one way this package reports a bad query.

Every limit here exists so that no user input can reach PostgreSQL in a form it rejects (a 500
for the client) or that costs it far more than a normal query: NUL bytes and lone surrogates
cannot be encoded as PostgreSQL text, integers beyond int64 overflow `bigint`, and unbounded
term or list counts make the planner slow.
"""

from __future__ import annotations

from service.domain.errors import BadRequest, FieldError

MAX_VALUE_CHARS = 1_000  # one value of select, order_by, limit, ...
MAX_WHERE_CHARS = 4_096  # one `where` term, values included
MAX_WHERE_TERMS = 50
MAX_IN_ITEMS = 1_000
MAX_LIST_ENTRIES = 100  # select, order_by(_sort), group_by, aggregate(_func)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_SHOW_CHARS = 40


def bad(loc: str, msg: str) -> BadRequest:
    """A 400 whose single field error is at `loc` (a parameter name such as `where[2]`)."""
    return BadRequest(f"invalid query parameter {loc}: {msg}", [FieldError(loc=loc, msg=msg)])


def show(text: str) -> str:
    """`text` quoted for an error message, shortened so errors never echo kilobytes of input."""
    if len(text) > _SHOW_CHARS:
        text = text[:_SHOW_CHARS] + "…"
    return repr(text)


def check_text(loc: str, text: str, max_chars: int) -> None:
    """Raise BadRequest unless `text` is short enough and storable as PostgreSQL text."""
    if len(text) > max_chars:
        raise bad(loc, f"longer than {max_chars} characters")
    if "\x00" in text:
        raise bad(loc, "contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: asyncpg would fail to encode them, after the query was accepted.
        raise bad(loc, "is not valid Unicode text") from None
