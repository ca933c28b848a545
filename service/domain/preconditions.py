"""Optimistic concurrency: entity tags of registry resources, and `If-Match` conditions on them.

A resource's tag is its row's revision, drawn from one sequence shared by every registry table
(migration 0014), so a tag is never reused: a resource deleted and made again under the same name
never matches a tag read from the old one. Conditions are checked after the row is locked, in
the transaction that changes it, so of two writers holding the same tag exactly one succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from service.domain.errors import DomainError

T = TypeVar("T")


class PreconditionFailed(DomainError):
    """`If-Match` named tags the resource no longer has (or the resource does not exist)."""


def etag(revision: int) -> str:
    """The strong entity tag of a revision, quotes included, as the `ETag` header carries it."""
    return f'"r{revision}"'


@dataclass(frozen=True)
class IfMatch:
    """The tags a change requires the resource to have; `tags is None` is `If-Match: *`."""

    tags: frozenset[str] | None

    def check(self, what: str, revision: int | None) -> None:
        """Raises unless the resource exists (`revision` not None) with one of the tags."""
        if revision is None:
            raise PreconditionFailed(f"{what} does not exist, so If-Match cannot match")
        if self.tags is not None and etag(revision) not in self.tags:
            raise PreconditionFailed(
                f"{what} has changed (its ETag is now {etag(revision)}); read it again and retry"
            )


def check(condition: IfMatch | None, what: str, revision: int | None) -> None:
    """No condition: the change goes ahead whatever the revision."""
    if condition is not None:
        condition.check(what, revision)


@dataclass(frozen=True)
class Tagged(Generic[T]):
    """A resource as read, with the revision its `ETag` names."""

    value: T
    revision: int

    @property
    def etag(self) -> str:
        return etag(self.revision)
