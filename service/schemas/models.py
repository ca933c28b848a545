"""Wire types of named models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from service.schemas.base import ColumnName
from service.schemas.jobs import JobOut, StatusName
from service.schemas.metadata import Metadata, MetadataOut


class ModelCreate(Metadata, kw_only=True):
    model_type: Annotated[
        str, msgspec.Meta(max_length=200, examples=["sklearn.linear_model.LogisticRegression"])
    ]
    settings: dict[str, Any] = msgspec.field(default_factory=dict)
    features: Annotated[list[ColumnName], msgspec.Meta(min_length=1, max_length=10_000)] | None = (
        None
    )
    target: ColumnName | None = None


class ModelOut(MetadataOut, kw_only=True):
    model_type: str
    settings: dict[str, Any]
    features: list[str] | None
    target: str | None
    can_input: bool
    can_output: bool
    can_update: bool
    created_by: str
    tenant: str
    created_at: datetime
    updated_at: datetime
    current_version: int | None
    status: StatusName
    job: JobOut | None = None
