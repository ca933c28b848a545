"""`POST /models/{name}/batch-predictions`: a prediction job over a dataset query."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.http.endpoints.jobs import accepted, read_submission
from service.http.params import path_str
from service.http.state import services
from service.schemas.training import BatchPredictRequest


async def submit(request: Request) -> Response:
    body, who, key = await read_submission(request, BatchPredictRequest)
    name = path_str(request, "name")
    return accepted(await services(request).batch_predictions.submit(name, body, who, key))
