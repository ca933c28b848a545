"""The fields that models and datasets share: a name, then title, description, tags, source."""

from __future__ import annotations

import msgspec

from service.schemas.base import ApiStruct, Name, ShortText, Tags, Text


class Metadata(ApiStruct):
    """On create: a name, and optional descriptive fields."""

    name: Name
    title: ShortText | None = None
    description: Text | None = None
    tags: Tags = msgspec.field(default_factory=list)
    source: ShortText | None = None


class MetadataPatch(ApiStruct):
    """Fields left out stay as they are; `null` clears a field."""

    title: ShortText | None | msgspec.UnsetType = msgspec.UNSET
    description: Text | None | msgspec.UnsetType = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET
    source: ShortText | None | msgspec.UnsetType = msgspec.UNSET


class MetadataOut(ApiStruct):
    name: str
    title: str | None
    description: str | None
    tags: list[str]
    source: str | None
