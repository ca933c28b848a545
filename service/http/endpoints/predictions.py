"""Online predictions: `POST /models/{name}/predict`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.http import examples
from service.http.operation import Operation
from service.http.params import MODEL_NAME, path_str
from service.http.responses import json_response
from service.http.routes import principal_of
from service.http.state import services
from service.logs import request_id
from service.schemas.predictions import PredictRequest, PredictResponse


async def predict(request: Request, body: PredictRequest) -> Response:
    tenant = principal_of(request).tenant
    name = path_str(request, "name")
    rid = request_id.get() or ""
    return json_response(await services(request).predictor.predict(tenant, name, body, rid))


OPERATIONS = [
    Operation(
        operation_id="predict",
        method="POST",
        path="/models/{name}/predict",
        endpoint=predict,
        scope="models:predict",
        summary="Online prediction",
        tag="predictions",
        body=PredictRequest,
        example=examples.PREDICT,
        response=PredictResponse,
        params=(MODEL_NAME,),
        errors=(404, 409, 504),
        description="Rows as `data` (records) or `columns` + `rows`; `output` is `predict` "
        "(default), `predict_proba` (one object per row keyed by class), `decision_function` "
        "or `transform`; `version` pins a version, `alias` the version an alias names; with "
        "neither, the model's traffic split decides (by default: the current version).",
    ),
]
