"""Batch predictions: `POST /models/{name}/batch-predictions`, a job over a dataset query."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.http import examples
from service.http.operation import Operation
from service.http.params import IDEMPOTENCY_KEY, MODEL_NAME, path_str
from service.http.routes import principal_of
from service.http.state import services
from service.http.submissions import accepted, idempotency_key
from service.schemas.jobs import JobOut
from service.schemas.training import BatchPredictRequest


async def create_batch_prediction(request: Request, body: BatchPredictRequest) -> Response:
    who = principal_of(request).sub
    key = idempotency_key(request, who)
    name = path_str(request, "name")
    return accepted(await services(request).batch_predictions.submit(name, body, who, key))


OPERATIONS = [
    Operation(
        operation_id="create_batch_prediction",
        method="POST",
        path="/models/{name}/batch-predictions",
        endpoint=create_batch_prediction,
        scope="models:write",
        also_requires=("datasets:read", "datasets:write"),  # reads one dataset, creates another
        summary="Predict over a dataset query into a new dataset (a background job)",
        tag="predictions",
        body=BatchPredictRequest,
        example=examples.BATCH_PREDICT,
        response=JobOut,
        status=202,
        params=(MODEL_NAME, IDEMPOTENCY_KEY),
        errors=(404, 409),
        description="The job's `result` is `{dataset, rows}`. The output dataset holds the "
        "selected input columns plus `prediction` (`proba_<class>` per class for "
        "`predict_proba`, `decision[_<i>]`, `component_<i>`); it appears only when the job "
        "succeeds.",
    ),
]
