"""The model-type catalogue: `/model-types`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.domain.errors import NotFound
from service.estimators.model_type import ModelTypeInfo
from service.http.operation import Operation, Param
from service.http.params import LIST_PARAMS, multi_params, path_str
from service.http.responses import json_response
from service.http.state import services
from service.query import parse_query
from service.schemas.pages import ModelTypePage

TYPE = Param(
    name="type",
    where="path",
    schema={"type": "string", "example": "sklearn.linear_model.LogisticRegression"},
    description="Model type name, e.g. sklearn.linear_model.Ridge",
)


async def list_model_types(request: Request) -> Response:
    query = parse_query(multi_params(request))
    return json_response(await services(request).model_types.list(query))


async def get_model_type(request: Request) -> Response:
    name = path_str(request, "type")
    model_type = await services(request).model_types.get(name)
    if model_type is None:
        raise NotFound(f"model type '{name}' does not exist")
    return json_response(model_type)


OPERATIONS = [
    Operation(
        operation_id="list_model_types",
        method="GET",
        path="/model-types",
        endpoint=list_model_types,
        scope="models:read",
        summary="List model types",
        tag="model types",
        response=ModelTypePage,
        params=LIST_PARAMS,
    ),
    Operation(
        operation_id="get_model_type",
        method="GET",
        path="/model-types/{type}",
        endpoint=get_model_type,
        scope="models:read",
        summary="Get a model type",
        tag="model types",
        response=ModelTypeInfo,
        params=(TYPE,),
        errors=(404,),
    ),
]
