"""Wire types of the registry: aliases, and the traffic split with its live figures."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from service.schemas.base import ApiStruct, VersionNumber

ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,62}(?!\n)$"
AliasName = Annotated[
    str,
    msgspec.Meta(
        pattern=ALIAS_PATTERN,
        description="Lower-case letters, digits, `_` and `-`; starts with a letter; at most 63.",
        examples=["production"],
    ),
]
MAX_SPLIT = 10
MAX_SHADOWS = 3


class AliasPut(ApiStruct):
    version: VersionNumber


class AliasOut(ApiStruct):
    alias: str
    version: int
    updated_at: datetime
    updated_by: str
    etag: Annotated[str, msgspec.Meta(description="The alias's `ETag`, for `If-Match`.")]


class AliasList(ApiStruct):
    items: list[AliasOut]


class SplitShare(ApiStruct):
    version: VersionNumber
    weight: Annotated[int, msgspec.Meta(ge=1, le=100, description="Percent of the traffic.")]


class TrafficPut(ApiStruct):
    """Predictions naming no version or alias go to `split` (weights sum to 100); every
    `shadow` version also predicts them, off the response path, for comparison only."""

    split: Annotated[list[SplitShare], msgspec.Meta(min_length=1, max_length=MAX_SPLIT)]
    shadow: Annotated[list[VersionNumber], msgspec.Meta(max_length=MAX_SHADOWS)] = msgspec.field(
        default_factory=list
    )


class VersionFigures(ApiStruct):
    """What one version did with the traffic since the split last changed, over every api
    replica. Latencies are read from a histogram whose buckets are 20 % wide."""

    version: int
    role: Literal["split", "shadow"]
    requests: int
    errors: int
    rows: int
    p50_ms: float | None
    p99_ms: float | None
    agreement: Annotated[
        float | None,
        msgspec.Meta(
            description="Shadows: the share of compared rows whose prediction equals the "
            "answering version's (floats within 1e-9 relative)."
        ),
    ] = None
    dropped: Annotated[
        int, msgspec.Meta(description="Shadows: requests skipped while the shadow queue was full.")
    ] = 0


class TrafficOut(ApiStruct):
    split: list[SplitShare]
    shadow: list[int]
    default: Annotated[
        bool,
        msgspec.Meta(
            description="True when no split is set: all traffic goes to the current version."
        ),
    ]
    updated_at: datetime | None
    updated_by: str | None
    etag: str | None
    figures: list[VersionFigures]
