"""Wire types of named models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from service.schemas.base import ApiStruct, ColumnName, Name, ShortText, Tags, Text
from service.schemas.jobs import JobOut, StatusName


class ModelCreate(ApiStruct):
    name: Name
    model_type: Annotated[
        str, msgspec.Meta(max_length=200, examples=["sklearn.linear_model.LogisticRegression"])
    ]
    title: ShortText | None = None
    description: Text | None = None
    tags: Tags = msgspec.field(default_factory=list)
    source: ShortText | None = None
    settings: dict[str, Any] = msgspec.field(default_factory=dict)
    features: Annotated[list[ColumnName], msgspec.Meta(min_length=1, max_length=10_000)] | None = (
        None
    )
    target: ColumnName | None = None


class ModelPatch(ApiStruct):
    """Fields left out stay as they are; `null` clears a field."""

    title: ShortText | None | msgspec.UnsetType = msgspec.UNSET
    description: Text | None | msgspec.UnsetType = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET
    source: ShortText | None | msgspec.UnsetType = msgspec.UNSET


class ModelOut(ApiStruct):
    name: str
    model_type: str
    title: str | None
    description: str | None
    tags: list[str]
    source: str | None
    settings: dict[str, Any]
    features: list[str] | None
    target: str | None
    can_input: bool
    can_output: bool
    can_update: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    current_version: int | None
    status: StatusName
    job: JobOut | None = None
