"""Online predictions: `POST /models/{name}/predict`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.domain.errors import FieldError, InvalidInput
from service.http import examples
from service.http.operation import Operation
from service.http.params import MODEL_NAME, path_str
from service.http.responses import json_response
from service.http.routes import principal_of
from service.http.state import services
from service.logs import request_id
from service.schemas.predictions import PredictRequest, PredictResponse
from service.serving.inputs import Columns, Records, Rows


async def predict(request: Request, body: PredictRequest) -> Response:
    tenant = principal_of(request).tenant
    name = path_str(request, "name")
    if body.version is not None and body.alias is not None:
        raise InvalidInput(
            "name a version or an alias, not both",
            [FieldError("$.alias", "given together with `version`")],
        )
    answer = await services(request).predictor.predict(
        tenant,
        name,
        rows_of(body),
        () if body.output is None else (body.output,),
        body.version,
        body.alias,
        request_id.get() or "",
    )
    values = answer.predictions[0].to_json()
    return json_response(
        PredictResponse(model=name, version=answer.model.version, predictions=values)
    )


def rows_of(body: PredictRequest) -> Rows:
    """The request's rows, after checking it uses exactly one of the two forms."""
    if body.data is not None:
        if body.columns is None and body.rows is None:
            return Records(body.data)
    elif body.columns is not None and body.rows is not None:
        return Columns(body.columns, body.rows)
    raise InvalidInput(
        "send rows as `data` (records) or as `columns` + `rows`",
        [FieldError("$", "expected `data`, or `columns` with `rows`")],
    )


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
