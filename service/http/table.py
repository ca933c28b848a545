"""Every operation the service offers, in one table (see `http/routes.py`)."""

from __future__ import annotations

from typing import Any

from service.http.endpoints import batch_predictions, datasets, jobs, models, ops
from service.http.routes import Operation, Param
from service.schemas.base import Page
from service.schemas.datasets import (
    DatasetCreate,
    DatasetOut,
    DatasetPatch,
    Deleted,
    Inserted,
    RowsAppend,
)
from service.schemas.jobs import JobOut, ModelStatus
from service.schemas.model_types import ModelTypeOut
from service.schemas.models import ModelCreate, ModelOut, ModelPatch
from service.schemas.predictions import PredictRequest, PredictResponse
from service.schemas.training import BatchPredictRequest, TrainRequest, VersionOut

_STR: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer", "minimum": 0}

LIST_PARAMS = (
    Param(
        "where",
        "query",
        _STR,
        "`column operator value`, e.g. `task = classification`",
        repeated=True,
    ),
    Param(
        "where_boolean",
        "query",
        {"type": "string", "enum": ["AND", "OR"]},
        "How `where` terms combine (default AND)",
    ),
    Param("select", "query", _STR, "Columns to return (default all)", repeated=True),
    Param("order_by", "query", _STR, "Columns to sort by", repeated=True),
    Param(
        "order_by_sort",
        "query",
        {"type": "string", "enum": ["asc", "desc"]},
        "Direction per `order_by` column (default asc)",
        repeated=True,
    ),
    Param(
        "limit",
        "query",
        {"type": "integer", "minimum": 0, "maximum": 10000},
        "Page size (default 100)",
    ),
    Param("offset", "query", _INT, "Rows to skip"),
)
MODEL = Param("name", "path", _STR, "Model name")
JOB = Param("job_id", "path", {"type": "string", "format": "uuid"}, "Job id")
VERSION = Param("version", "path", {"type": "integer", "minimum": 1}, "Version number")
IDEMPOTENCY = Param(
    "Idempotency-Key",
    "header",
    {"type": "string", "maxLength": 255},
    "Repeat a submission safely: the same key and body return the first response; the same key "
    "with another body is a 422.",
)
PAGING = (LIST_PARAMS[-2], LIST_PARAMS[-1])
JOB_FILTERS = tuple(
    Param(name, "query", _STR, f"Only jobs with this {name}")
    for name in ("model", "status", "kind")
)
TYPE = Param("type", "path", _STR, "Model type name, e.g. sklearn.linear_model.Ridge")

OPERATIONS: list[Operation] = [
    # operations
    Operation("GET", "/livez", ops.livez, None, "Liveness: the process serves", "operations"),
    Operation(
        "GET",
        "/readyz",
        ops.readyz,
        None,
        "Readiness: PostgreSQL and Redis answer and migrations are applied",
        "operations",
        response=ops.Health,
        extra_responses={503: "Not ready; the body names the failing checks"},
    ),
    Operation(
        "GET",
        "/metrics",
        ops.metrics,
        None,
        "Prometheus metrics",
        "operations",
        response_media=("text/plain",),
    ),
    Operation("GET", "/openapi.json", ops.openapi, None, "This document", "operations"),
    Operation(
        "GET", "/docs", ops.docs, None, "Swagger UI", "operations", response_media=("text/html",)
    ),
    # the catalogue
    Operation(
        "GET",
        "/model-types",
        models.list_model_types,
        "models:read",
        "List model types",
        "model types",
        response=Page[dict[str, Any]],
        params=LIST_PARAMS,
    ),
    Operation(
        "GET",
        "/model-types/{type}",
        models.get_model_type,
        "models:read",
        "Get a model type",
        "model types",
        response=ModelTypeOut,
        params=(TYPE,),
        errors=(404,),
    ),
    # models
    Operation(
        "POST",
        "/models",
        models.create_model,
        "models:write",
        "Create a named model",
        "models",
        body=ModelCreate,
        response=ModelOut,
        status=201,
        errors=(409,),
    ),
    Operation(
        "GET",
        "/models",
        models.list_models,
        "models:read",
        "List and search models",
        "models",
        response=Page[dict[str, Any]],
        params=LIST_PARAMS,
    ),
    Operation(
        "GET",
        "/models/{name}",
        models.get_model,
        "models:read",
        "Get a model",
        "models",
        response=ModelOut,
        params=(MODEL,),
        errors=(404,),
    ),
    Operation(
        "PATCH",
        "/models/{name}",
        models.patch_model,
        "models:write",
        "Change a model's title, description, tags or source",
        "models",
        body=ModelPatch,
        response=ModelOut,
        params=(MODEL,),
        errors=(404,),
    ),
    Operation(
        "DELETE",
        "/models/{name}",
        models.delete_model,
        "models:write",
        "Delete a model, cancelling its jobs and dropping its versions",
        "models",
        status=204,
        params=(MODEL,),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/models/{name}/predict",
        models.predict,
        "models:predict",
        "Online prediction",
        "predictions",
        body=PredictRequest,
        response=PredictResponse,
        params=(MODEL,),
        errors=(404, 409, 504),
        description="Rows as `data` (records) or `columns` + `rows`; `output` is `predict` "
        "(default), `predict_proba` (one object per row keyed by class), `decision_function` "
        "or `transform`; `version` pins a version instead of the current one.",
    ),
    # training and jobs
    Operation(
        "POST",
        "/models/{name}/train",
        jobs.train,
        "models:write",
        "Train a new version (a background job)",
        "training",
        body=TrainRequest,
        response=JobOut,
        status=202,
        params=(MODEL, IDEMPOTENCY),
        errors=(404, 409),
        description="Fits a fresh estimator on `data` (records) or a `dataset` query. The job's "
        "URL is in `Location`; the new version becomes current when the job succeeds.",
    ),
    Operation(
        "POST",
        "/models/{name}/update",
        jobs.update,
        "models:write",
        "Update the current version with new data (a background job)",
        "training",
        body=TrainRequest,
        response=JobOut,
        status=202,
        params=(MODEL, IDEMPOTENCY),
        errors=(404, 409),
        description="Incremental types continue with `partial_fit`; others are refit on the "
        "current version's training rows plus the new rows.",
    ),
    Operation(
        "GET",
        "/models/{name}/status",
        jobs.model_status,
        "models:read",
        "The model's active job, else its latest",
        "training",
        response=ModelStatus,
        params=(MODEL,),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/models/{name}/cancel",
        jobs.cancel_model_job,
        "models:write",
        "Cancel the model's active job",
        "training",
        response=JobOut,
        status=202,
        params=(MODEL,),
        errors=(404, 409),
    ),
    Operation(
        "GET",
        "/jobs",
        jobs.list_jobs,
        "models:read",
        "List jobs",
        "jobs",
        response=Page[dict[str, Any]],
        params=(*JOB_FILTERS, *LIST_PARAMS),
    ),
    Operation(
        "GET",
        "/jobs/{job_id}",
        jobs.get_job,
        "models:read",
        "Get a job",
        "jobs",
        response=JobOut,
        params=(JOB,),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/jobs/{job_id}/cancel",
        jobs.cancel_job,
        "models:write",
        "Cancel a job",
        "jobs",
        response=JobOut,
        status=202,
        params=(JOB,),
        errors=(404, 409),
    ),
    # versions
    Operation(
        "GET",
        "/models/{name}/versions",
        jobs.list_versions,
        "models:read",
        "List a model's versions, newest first",
        "versions",
        response=Page[VersionOut],
        params=(MODEL, *PAGING),
        errors=(404,),
    ),
    Operation(
        "GET",
        "/models/{name}/versions/{version}",
        jobs.get_version,
        "models:read",
        "Get one version",
        "versions",
        response=VersionOut,
        params=(MODEL, VERSION),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/models/{name}/versions/{version}/activate",
        jobs.activate_version,
        "models:write",
        "Make a version current (rollback or roll forward)",
        "versions",
        response=ModelOut,
        params=(MODEL, VERSION),
        errors=(404,),
    ),
]

# -- datasets, and batch predictions into them ----------------------------------------------------

DATASET = Param("name", "path", _STR, "Dataset name")
GROUPING = (
    Param("group_by", "query", _STR, "Columns to group by", repeated=True),
    Param(
        "aggregate", "query", _STR, "Columns to aggregate (result `{column}_{func}`)", repeated=True
    ),
    Param(
        "aggregate_func",
        "query",
        {"type": "string", "enum": ["count", "sum", "avg", "min", "max", "stddev"]},
        "Function per `aggregate` column",
        repeated=True,
    ),
)
CSV_UPLOAD = (
    Param("name", "query", _STR, "With a CSV body: the new dataset's name (required)"),
    Param("title", "query", _STR, "With a CSV body: title"),
    Param("description", "query", _STR, "With a CSV body: description"),
    Param("tags", "query", _STR, "With a CSV body: tags", repeated=True),
    Param("source", "query", _STR, "With a CSV body: where the data comes from"),
    Param(
        "columns",
        "query",
        _STR,
        "With a CSV body: `name:type` declares a column's type (integer, float, boolean, text, "
        "timestamp); other columns are inferred from the header and the first 1000 rows",
        repeated=True,
    ),
)
_CSV_MEDIA = ("application/json", "text/csv")

OPERATIONS += [
    Operation(
        "POST",
        "/datasets",
        datasets.create_dataset,
        "datasets:write",
        "Create a dataset from JSON records or a streamed CSV",
        "datasets",
        body=DatasetCreate,
        response=DatasetOut,
        status=201,
        params=CSV_UPLOAD,
        body_media=_CSV_MEDIA,
        errors=(409,),
        description="JSON: `{name, title?, description?, tags?, source?, columns?, data}`. "
        "CSV (`Content-Type: text/csv`, UTF-8, a header line): metadata as query parameters; "
        "the body streams into PostgreSQL. A value that does not fit its column is a 422 naming "
        "row and column, and nothing is stored.",
    ),
    Operation(
        "GET",
        "/datasets",
        datasets.list_datasets,
        "datasets:read",
        "List and search datasets",
        "datasets",
        response=Page[dict[str, Any]],
        params=LIST_PARAMS,
    ),
    Operation(
        "GET",
        "/datasets/{name}",
        datasets.get_dataset,
        "datasets:read",
        "A dataset's metadata: columns with types, row count, …",
        "datasets",
        response=DatasetOut,
        params=(DATASET,),
        errors=(404,),
    ),
    Operation(
        "PATCH",
        "/datasets/{name}",
        datasets.patch_dataset,
        "datasets:write",
        "Change a dataset's title, description, tags or source",
        "datasets",
        body=DatasetPatch,
        response=DatasetOut,
        params=(DATASET,),
        errors=(404,),
    ),
    Operation(
        "DELETE",
        "/datasets/{name}",
        datasets.delete_dataset,
        "datasets:write",
        "Drop a dataset",
        "datasets",
        status=204,
        params=(DATASET,),
        errors=(404,),
    ),
    Operation(
        "GET",
        "/datasets/{name}/rows",
        datasets.query_rows,
        "datasets:read",
        "Query a dataset's rows",
        "datasets",
        response=Page[dict[str, Any]],
        params=(DATASET, *LIST_PARAMS, *GROUPING),
        response_media=_CSV_MEDIA,
        errors=(404,),
        description="The full query language, with grouping and aggregates. With `Accept: "
        "text/csv` the result streams as CSV (text quoted, null as an empty field), and "
        "`limit` defaults to every row and has no maximum.",
    ),
    Operation(
        "POST",
        "/datasets/{name}/rows",
        datasets.append_rows,
        "datasets:write",
        "Append rows (JSON records or CSV)",
        "datasets",
        body=RowsAppend,
        response=Inserted,
        params=(DATASET,),
        body_media=_CSV_MEDIA,
        errors=(404,),
        description="JSON `{data: [records]}` or a CSV whose header names existing columns; "
        "all rows or none are added.",
    ),
    Operation(
        "DELETE",
        "/datasets/{name}/rows",
        datasets.delete_rows,
        "datasets:write",
        "Delete the rows matching `where` (required)",
        "datasets",
        response=Deleted,
        params=(DATASET, LIST_PARAMS[0], LIST_PARAMS[1]),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/models/{name}/batch-predictions",
        batch_predictions.submit,
        "models:write",
        "Predict over a dataset query into a new dataset (a background job)",
        "predictions",
        body=BatchPredictRequest,
        response=JobOut,
        status=202,
        params=(MODEL, IDEMPOTENCY),
        errors=(404, 409),
        description="The job's `result` is `{dataset, rows}`. The output dataset holds the "
        "selected input columns plus `prediction` (`proba_<class>` per class for "
        "`predict_proba`, `decision[_<i>]`, `component_<i>`); it appears only when the job "
        "succeeds.",
    ),
]
