"""Wire types of background jobs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from service.schemas.base import ApiStruct

JobKind = Literal["train", "update", "batch_predict"]
FitKind = Literal["train", "update"]  # the kinds that make a version
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
StatusName = Literal["idle", "queued", "running", "succeeded", "failed", "cancelled"]


class JobError(ApiStruct):
    type: str
    message: str


class JobOut(ApiStruct):
    id: uuid.UUID
    model: str
    kind: JobKind
    status: JobStatus
    created_by: str
    tenant: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    progress: float | None
    error: JobError | None
    result: dict[str, Any] | None


class ModelStatus(ApiStruct):
    status: StatusName
    job: JobOut | None
