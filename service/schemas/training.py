"""Wire types of train, update and batch-prediction requests, and of versions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from service.schemas.base import ApiStruct, ColumnName, Name, VersionNumber

Scalar = str | int | float | bool | None
Record = dict[str, Scalar]
QueryTerm = Annotated[str, msgspec.Meta(max_length=4096)]
ColumnList = Annotated[list[ColumnName], msgspec.Meta(max_length=10_000)]
AggregateFunc = Annotated[
    str,
    msgspec.Meta(
        max_length=100, description="count, sum, avg, min, max or stddev", examples=["avg"]
    ),
]


class DatasetSelection(ApiStruct):
    """Rows of a stored dataset, chosen with the query language (one result row per row).

    The fields are the query parameters of `GET /datasets/{name}/rows`, with the same meaning
    and the same checks; `limit` left out means every matching row."""

    name: Name
    where: Annotated[list[QueryTerm], msgspec.Meta(max_length=50)] = msgspec.field(
        default_factory=list
    )
    where_boolean: Literal["AND", "OR", "and", "or"] = "AND"
    select: ColumnList = msgspec.field(default_factory=list)
    order_by: ColumnList = msgspec.field(default_factory=list)
    order_by_sort: Annotated[list[str], msgspec.Meta(max_length=10_000)] = msgspec.field(
        default_factory=list
    )
    limit: Annotated[int, msgspec.Meta(ge=0)] | None = None
    offset: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 0


class DatasetQuery(DatasetSelection):
    """The whole dataset query language: a selection, optionally grouped and aggregated.

    With `group_by` and/or `aggregate`, each result row is a group: its `group_by` columns
    (or the subset named in `select`) and one `{column}_{func}` column per aggregate."""

    group_by: ColumnList = msgspec.field(default_factory=list)
    aggregate: ColumnList = msgspec.field(default_factory=list)
    aggregate_func: Annotated[list[AggregateFunc], msgspec.Meta(max_length=10_000)] = msgspec.field(
        default_factory=list
    )


class TrainRequest(ApiStruct):
    """Exactly one of `data` (records) or `dataset` (a query over a stored dataset)."""

    data: list[Record] | None = None
    dataset: DatasetQuery | None = None
    features: Annotated[list[ColumnName], msgspec.Meta(min_length=1, max_length=10_000)] | None = (
        None
    )
    target: ColumnName | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    settings: Annotated[
        dict[str, Any],
        msgspec.Meta(
            description="Hyperparameters for this version only, merged over the model's and "
            "validated like them (a 422 names `$.settings.<key>`); the model's own settings stay "
            "as they are. An update by `partial_fit` continues the current estimator and takes "
            "none.",
            examples=[{"C": 0.5}],
        ),
    ] = msgspec.field(default_factory=dict)


Output = Literal["predict", "predict_proba", "decision_function", "transform"]


class BatchPredictRequest(ApiStruct):
    dataset: DatasetSelection
    output_dataset: Name
    output: Output | None = None
    version: VersionNumber | None = None


class VersionOut(ApiStruct):
    version: int
    created_at: datetime
    created_by: str
    tenant: str
    job_id: uuid.UUID | None
    kind: Literal["train", "update"]
    parent_version: int | None
    rows: int
    source: Any
    metrics: dict[str, float | None]
    features: list[str]
    target: str | None
    classes: list[Any] | None
    outputs: list[str]
    artifact_sha256: str
    artifact_bytes: int
    library_versions: dict[str, str]
    settings: Annotated[
        dict[str, Any] | None,
        msgspec.Meta(
            description="The hyperparameters the fit really used, defaults included (values "
            "JSON cannot hold are left out); null for versions stored before they were recorded."
        ),
    ] = None
    warnings: Annotated[
        list[str],
        msgspec.Meta(description="What the fit warned, as `Category: message`, each once."),
    ] = msgspec.field(default_factory=list)
    current: bool = False
