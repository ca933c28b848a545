"""The messages of jobs. What a job is asked to do: one tagged Struct per job kind, stored as
the job row's `spec`; what a fit produced; what a finished job reports as its `result`.

The domain plans a spec when the job is submitted, the repository stores it (jsonb, encoded by
msgspec with its `kind` tag) and reads it back as the same Struct, so the worker decodes it once
and never reads a key by name. Specs written before the tag existed carry no `kind`; the job
row's `kind` column fills it in when the row is read (see `repositories/jobs.py`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from service.domain.actors import Actor
from service.estimators.frame import FeatureKind
from service.schemas.jobs import JobKind, JobStatus
from service.schemas.training import DatasetQuery, DatasetSelection, Output


class DatasetSource(msgspec.Struct, frozen=True, kw_only=True, tag="dataset", tag_field="kind"):
    """Rows read from a stored dataset by the worker; `rows` is known once they were read."""

    query: DatasetQuery
    rows: int | None = None


# Where a version's training rows came from, as its `source` field shows it.
TrainingSource = Literal["inline"] | DatasetSource


class _FitSpec(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    model_type: str
    settings: dict[str, Any]
    features: list[str]
    target: str | None
    parameters: dict[str, Any]
    source: TrainingSource
    # The stored dataset to read (source is a dataset), or the rows sent inline (source inline).
    dataset_id: int | None = None
    batch_id: int | None = None


class TrainSpec(_FitSpec, frozen=True, kw_only=True, tag="train"):
    """Fit a new estimator on the job's rows."""


class UpdateSpec(_FitSpec, frozen=True, kw_only=True, tag="update"):
    """Extend the model's current version (`base_version`): refit on its rows plus the new
    ones, or `partial_fit` the new rows only when the type is incremental."""

    base_version: int
    incremental: bool


class BatchPredictSpec(
    msgspec.Struct, frozen=True, kw_only=True, tag="batch_predict", tag_field="kind"
):
    """Run `version` over a dataset query (`read` columns) into the new dataset
    `output_dataset`, which keeps the `select`ed input columns and adds the predictions."""

    version: int
    output: Output
    dataset_id: int
    query: DatasetSelection
    select: list[str]
    read: list[str]
    output_dataset: str


FitSpec = TrainSpec | UpdateSpec
JobSpec = TrainSpec | UpdateSpec | BatchPredictSpec


class ClaimedJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job as the worker runs it: who and what, with its decoded spec."""

    id: uuid.UUID
    model_id: int
    model_name: str
    kind: JobKind
    status: JobStatus
    spec: JobSpec
    created_by: str
    tenant: str
    attempts: int
    dispatches: int


@dataclass(frozen=True, slots=True)
class JobOrigin:
    """What the worker reads of a job before claiming it: whom it acts for, what it is, the
    trace of the request that submitted it (W3C headers, None when untraced), how long ago that
    was, and how many attempts it has had."""

    actor: Actor
    kind: JobKind
    model_name: str
    trace_context: dict[str, str] | None
    waited_seconds: float
    attempts: int


class PreviousVersion(msgspec.Struct, frozen=True, kw_only=True):
    """What an incremental update needs to know about the version it extends."""

    model_type: str
    settings: dict[str, Any]
    features: list[str]
    feature_kinds: dict[str, FeatureKind]
    target: str | None
    classes: list[Any] | None
    rows: int


class FittedVersion(msgspec.Struct, kw_only=True):
    """What a successful fit produced: the artifact's joblib bytes and what describes it."""

    artifact: bytes = b""
    features: list[str] = msgspec.field(default_factory=list)
    feature_kinds: dict[str, str] = msgspec.field(default_factory=dict)
    target: str | None = None
    classes: list[Any] | None = None
    outputs: list[str] = msgspec.field(default_factory=list)
    metrics: dict[str, float | None] = msgspec.field(default_factory=dict)
    rows: int = 0
    library_versions: dict[str, str] = msgspec.field(default_factory=dict)
    warnings: list[str] = msgspec.field(default_factory=list)
    settings: dict[str, Any] = msgspec.field(default_factory=dict)  # as the estimator used them


class VersionMade(msgspec.Struct, frozen=True, kw_only=True):
    """The `result` of a training or update job."""

    version: int


class DatasetMade(msgspec.Struct, frozen=True, kw_only=True):
    """The `result` of a batch-prediction job."""

    dataset: str
    rows: int


JobResult = VersionMade | DatasetMade
