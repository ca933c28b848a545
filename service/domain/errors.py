"""Domain errors: what went wrong, in the domain's words. `http/problems.py` maps them to HTTP."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec


class FieldError(msgspec.Struct, frozen=True):
    """One problem at one place: `loc` is a JSON path (`$.data[3].x`) or a parameter name."""

    loc: str
    msg: str


class DomainError(Exception):
    """Base of every error a use case may raise on purpose."""

    def __init__(self, detail: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)


class NotFound(DomainError):
    """The named resource does not exist."""


class Conflict(DomainError):
    """The request clashes with the current state (duplicate name, active job, ...)."""


class InvalidInput(DomainError):
    """Well-formed but invalid content (a 422)."""


class BadRequest(DomainError):
    """Malformed request parameters, such as an unparsable query (a 400)."""


class QueryTimeout(DomainError):
    """A query ran into the statement timeout; a narrower one may succeed."""

    def __init__(self) -> None:
        super().__init__(
            "the query took longer than the database allows; narrow it (where, limit, select)"
        )


class Unavailable(DomainError):
    """A dependency (PostgreSQL, Redis) does not answer; the client should retry later."""

    def __init__(self, dependency: str, retry_after: int = 5) -> None:
        super().__init__(f"{dependency} is unavailable")
        self.dependency = dependency
        self.retry_after = retry_after
