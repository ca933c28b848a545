"""Who a unit of work acts for: the tenant whose rows it may see and change, the caller's `sub`
and the request id that caused it.

It is set once at the edge (the api's dispatcher after authenticating, the worker from a job's
row) and read by the database layer, which sets it on every transaction (`SET LOCAL`), so
PostgreSQL's row-level security, the audit trail and the job rows all see the same actor. Code
that runs with no actor sees no tenant's rows at all.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}(?!\n)$"  # `(?!\n)`: see NAME_PATTERN
_TENANT = re.compile(TENANT_PATTERN)


@dataclass(frozen=True, slots=True)
class Actor:
    tenant: str
    sub: str
    request_id: str = ""


_current: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("actor", default=None)


def is_tenant_name(value: str) -> bool:
    # fullmatch: with `match`, `$` also matches before a final newline, so "acme\n" would pass.
    return _TENANT.fullmatch(value) is not None


def current_actor() -> Actor | None:
    return _current.get()


def act_as(actor: Actor | None) -> None:
    """For the rest of this task (one request): its handlers and response run as `actor`."""
    _current.set(actor)


@contextmanager
def acting_as(actor: Actor | None) -> Iterator[None]:
    """Within the block only (a job the worker runs among others)."""
    token = _current.set(actor)
    try:
        yield
    finally:
        _current.reset(token)
