"""Which version answers a prediction: the one it names, its alias's, or the split's choice.

A prediction that names neither a version nor an alias follows the model's split. The choice is
a pure function of the request id: its BLAKE2b hash, modulo 100, falls into one version's share
of the cumulative weights. So a retry that repeats its `X-Request-ID` is answered by the same
version, replicas agree without talking, and over many distinct request ids each version gets
its weight's share (the ids the service makes are random UUIDs).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from service.domain.errors import NotFound
from service.repositories.models import Current


@dataclass(frozen=True, slots=True)
class Routed:
    version: int | None
    follows_split: bool  # named neither a version nor an alias: counted in the figures


def route(
    current: Current, name: str, version: int | None, alias: str | None, request_id: str
) -> Routed:
    if version is not None:
        return Routed(version, False)
    if alias is not None:
        aliased = current.aliases.get(alias)
        if aliased is None:
            raise NotFound(f"model '{name}' has no alias '{alias[:100]}'")
        return Routed(aliased, False)
    if not current.split:
        return Routed(current.version, True)
    return Routed(pick(current.split, bucket(request_id)), True)


def bucket(request_id: str) -> int:
    """0..99, uniform over random request ids."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


def pick(split: tuple[tuple[int, int], ...], at: int) -> int:
    """The version whose share of the cumulative weights holds `at` (weights sum to 100)."""
    for version, weight in split:
        if at < weight:
            return version
        at -= weight
    return split[-1][0]
