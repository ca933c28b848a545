"""Wire types of datasets: creation, metadata, appends and row deletions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from service.schemas.base import ApiStruct, ColumnName
from service.schemas.metadata import Metadata, MetadataOut
from service.schemas.training import Record

ColumnTypeName = Literal["integer", "float", "boolean", "text", "timestamp"]
COLUMN_TYPES: tuple[ColumnTypeName, ...] = ("integer", "float", "boolean", "text", "timestamp")
MAX_COLUMNS = 1_000


class ColumnSpec(ApiStruct):
    """A column and its type: `integer` (64-bit), `float` (double), `boolean`, `text` or
    `timestamp` (with time zone; RFC 3339)."""

    name: ColumnName
    type: ColumnTypeName


Columns = Annotated[list[ColumnSpec], msgspec.Meta(max_length=MAX_COLUMNS)]


class DatasetCreate(Metadata, kw_only=True):
    """Rows as records; `columns` declares types (and order) of some or all columns, the rest
    are inferred from the values. With `columns` and no `data` the dataset starts empty."""

    columns: Columns | None = None
    data: list[Record] = msgspec.field(default_factory=list)


class RowsAppend(ApiStruct):
    """Records to add; keys must be existing columns, a missing key is null."""

    data: list[Record]


class DatasetOut(MetadataOut, kw_only=True):
    columns: list[ColumnSpec]
    rows: int
    created_by: str
    tenant: str
    created_at: datetime
    updated_at: datetime


class Inserted(ApiStruct):
    inserted: int


class Deleted(ApiStruct):
    deleted: int
