"""Wire types of online predictions."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from service.schemas.base import ApiStruct, ColumnName, VersionNumber
from service.schemas.registry import AliasName
from service.schemas.training import Output, Record, Scalar


class PredictRequest(ApiStruct):
    """Rows as records (`data`) or as `columns` + `rows`."""

    data: list[Record] | None = None
    columns: Annotated[list[ColumnName], msgspec.Meta(max_length=10_000)] | None = None
    rows: list[list[Scalar]] | None = None
    output: Output | None = None
    version: VersionNumber | None = None
    alias: AliasName | None = None


class PredictResponse(ApiStruct):
    model: str
    version: int
    predictions: list[Any]
