"""Background jobs: train and update a model, follow and cancel its jobs, list jobs."""

from __future__ import annotations

import enum
from typing import Any, get_args

from starlette.requests import Request
from starlette.responses import Response

from service.http import examples
from service.http.operation import Operation, Param
from service.http.params import (
    IDEMPOTENCY_KEY,
    LIST_PARAMS,
    MODEL_NAME,
    multi_params,
    path_str,
    path_uuid,
    single,
)
from service.http.responses import json_response
from service.http.routes import principal_of
from service.http.state import services
from service.http.submissions import accepted, idempotency_key
from service.query import parse_query
from service.schemas.jobs import FitKind, JobKind, JobOut, JobStatus, ModelStatus
from service.schemas.pages import JobPage
from service.schemas.training import TrainRequest

# A `dataset` source reads that dataset: without `datasets:read` a model token could train on
# a secret column and read it back from the fitted model.
DATASET_SOURCE_SCOPES = {"dataset": ("datasets:read",)}


def _values(choices: Any) -> list[str]:
    """The values of a `Literal[...]` or of an `Enum`, for a documented parameter."""
    if isinstance(choices, type) and issubclass(choices, enum.Enum):
        return [str(member.value) for member in choices]
    return [str(value) for value in get_args(choices)]


JOB_ID = Param(
    name="job_id", where="path", schema={"type": "string", "format": "uuid"}, description="Job id"
)
JOB_FILTERS = (
    Param(name="model", where="query", schema={"type": "string"}, description="Only this model's"),
    Param(
        name="status",
        where="query",
        schema={"type": "string", "enum": _values(JobStatus)},
        description="Only jobs in this status",
    ),
    Param(
        name="kind",
        where="query",
        schema={"type": "string", "enum": _values(JobKind)},
        description="Only jobs of this kind",
    ),
)


async def train_model(request: Request, body: TrainRequest) -> Response:
    return await _submit(request, "train", body)


async def update_model_data(request: Request, body: TrainRequest) -> Response:
    return await _submit(request, "update", body)


async def _submit(request: Request, kind: FitKind, body: TrainRequest) -> Response:
    who = principal_of(request).sub
    key = idempotency_key(request, who)
    name = path_str(request, "name")
    return accepted(await services(request).jobs.submit(name, kind, body, who, key))


async def get_model_status(request: Request) -> Response:
    return json_response(await services(request).jobs.status(path_str(request, "name")))


async def cancel_model_job(request: Request) -> Response:
    job = await services(request).jobs.cancel_active(path_str(request, "name"))
    return json_response(job, 202, {"Location": f"/jobs/{job.id}"})


async def list_jobs(request: Request) -> Response:
    params = multi_params(request)
    filters = {p.name: value for p in JOB_FILTERS if (value := single(params, p.name)) is not None}
    for p in JOB_FILTERS:
        params.pop(p.name, None)
    return json_response(await services(request).jobs.list(parse_query(params), filters))


async def get_job(request: Request) -> Response:
    job_id = path_uuid(request, "job_id", "job")
    return json_response(await services(request).jobs.get(job_id))


async def cancel_job(request: Request) -> Response:
    job = await services(request).jobs.cancel(path_uuid(request, "job_id", "job"))
    return json_response(job, 202, {"Location": f"/jobs/{job.id}"})


OPERATIONS = [
    Operation(
        operation_id="train_model",
        method="POST",
        path="/models/{name}/train",
        endpoint=train_model,
        scope="models:write",
        body_scopes=DATASET_SOURCE_SCOPES,
        summary="Train a new version (a background job)",
        tag="training",
        body=TrainRequest,
        example=examples.TRAIN,
        response=JobOut,
        status=202,
        params=(MODEL_NAME, IDEMPOTENCY_KEY),
        errors=(404, 409),
        description="Fits a fresh estimator on `data` (records) or a `dataset` query. The job's "
        "URL is in `Location`; the new version becomes current when the job succeeds.",
    ),
    Operation(
        operation_id="update_model_data",
        method="POST",
        path="/models/{name}/update",
        endpoint=update_model_data,
        scope="models:write",
        body_scopes=DATASET_SOURCE_SCOPES,
        summary="Update the current version with new data (a background job)",
        tag="training",
        body=TrainRequest,
        example=examples.UPDATE,
        response=JobOut,
        status=202,
        params=(MODEL_NAME, IDEMPOTENCY_KEY),
        errors=(404, 409),
        description="Incremental types continue with `partial_fit`; others are refit on the "
        "current version's training rows plus the new rows.",
    ),
    Operation(
        operation_id="get_model_status",
        method="GET",
        path="/models/{name}/status",
        endpoint=get_model_status,
        scope="models:read",
        summary="The model's active job, else its latest",
        tag="training",
        response=ModelStatus,
        params=(MODEL_NAME,),
        errors=(404,),
    ),
    Operation(
        operation_id="cancel_model_job",
        method="POST",
        path="/models/{name}/cancel",
        endpoint=cancel_model_job,
        scope="models:write",
        summary="Cancel the model's active job",
        tag="training",
        response=JobOut,
        status=202,
        params=(MODEL_NAME,),
        errors=(404, 409),
    ),
    Operation(
        operation_id="list_jobs",
        method="GET",
        path="/jobs",
        endpoint=list_jobs,
        scope="models:read",
        summary="List jobs",
        tag="jobs",
        response=JobPage,
        params=(*JOB_FILTERS, *LIST_PARAMS),
    ),
    Operation(
        operation_id="get_job",
        method="GET",
        path="/jobs/{job_id}",
        endpoint=get_job,
        scope="models:read",
        summary="Get a job",
        tag="jobs",
        response=JobOut,
        params=(JOB_ID,),
        errors=(404,),
    ),
    Operation(
        operation_id="cancel_job",
        method="POST",
        path="/jobs/{job_id}/cancel",
        endpoint=cancel_job,
        scope="models:write",
        summary="Cancel a job",
        tag="jobs",
        response=JobOut,
        status=202,
        params=(JOB_ID,),
        errors=(404, 409),
    ),
]
