"""`POST /models/{name}/batch-predictions`: a prediction job over a dataset query."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.http.bodies import decode_json, is_json, read_body
from service.http.endpoints.jobs import _idempotency_key as idempotency_key
from service.http.params import path_str
from service.http.problems import HttpProblem
from service.http.responses import json_response
from service.http.routes import principal_of
from service.http.state import services
from service.schemas.training import BatchPredictRequest


async def submit(request: Request) -> Response:
    svc = services(request)
    if not is_json(request):
        raise HttpProblem(415, "expected Content-Type application/json")
    raw = await read_body(request, svc.settings.http.max_body_bytes)
    body = decode_json(raw, BatchPredictRequest)
    who = principal_of(request).sub
    submitted = await svc.batch_predictions.submit(
        path_str(request, "name"), body, who, idempotency_key(request, who, raw)
    )
    headers = {"Location": f"/jobs/{submitted.job.id}"}
    if submitted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(submitted.job, 202, headers)
