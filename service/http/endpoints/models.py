"""Named models: `/models` and `/models/{name}` (create, list, read, change, delete)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.http import examples
from service.http.operation import Operation
from service.http.params import LIST_PARAMS, MODEL_NAME, multi_params, path_str
from service.http.preconditions import IF_MATCH, if_match
from service.http.responses import json_response, tagged_response
from service.http.routes import principal_of
from service.http.state import services
from service.query import parse_query
from service.schemas.metadata import MetadataPatch
from service.schemas.models import ModelCreate, ModelOut
from service.schemas.pages import ModelPage


async def create_model(request: Request, body: ModelCreate) -> Response:
    model = await services(request).models.create(body, principal_of(request).sub)
    headers = {"Location": f"/models/{model.value.name}", "ETag": model.etag}
    return json_response(model.value, 201, headers)


async def list_models(request: Request) -> Response:
    return json_response(await services(request).models.list(parse_query(multi_params(request))))


async def get_model(request: Request) -> Response:
    return tagged_response(await services(request).models.get(path_str(request, "name")))


async def update_model(request: Request, body: MetadataPatch) -> Response:
    name = path_str(request, "name")
    return tagged_response(await services(request).models.patch(name, body, if_match(request)))


async def delete_model(request: Request) -> Response:
    svc = services(request)
    name = path_str(request, "name")
    await svc.jobs.delete_model(name, if_match(request))
    # Not waiting for this process's own NOTIFY.
    svc.registry.forget(principal_of(request).tenant, name)
    return Response(status_code=204)


OPERATIONS = [
    Operation(
        operation_id="create_model",
        method="POST",
        path="/models",
        endpoint=create_model,
        scope="models:write",
        summary="Create a named model",
        tag="models",
        body=ModelCreate,
        example=examples.CREATE_MODEL,
        response=ModelOut,
        status=201,
        errors=(409,),
    ),
    Operation(
        operation_id="list_models",
        method="GET",
        path="/models",
        endpoint=list_models,
        scope="models:read",
        summary="List and search models",
        tag="models",
        response=ModelPage,
        params=LIST_PARAMS,
    ),
    Operation(
        operation_id="get_model",
        method="GET",
        path="/models/{name}",
        endpoint=get_model,
        scope="models:read",
        summary="Get a model",
        tag="models",
        response=ModelOut,
        params=(MODEL_NAME,),
        errors=(404,),
        description="The `ETag` header names this state of the model (its metadata and "
        "current version, not its job's progress), for `If-Match`.",
    ),
    Operation(
        operation_id="update_model",
        method="PATCH",
        path="/models/{name}",
        endpoint=update_model,
        scope="models:write",
        summary="Change a model's title, description, tags or source",
        tag="models",
        body=MetadataPatch,
        example=examples.CHANGE_METADATA,
        response=ModelOut,
        params=(MODEL_NAME, IF_MATCH),
        errors=(404, 412),
    ),
    Operation(
        operation_id="delete_model",
        method="DELETE",
        path="/models/{name}",
        endpoint=delete_model,
        scope="models:write",
        summary="Delete a model, cancelling its jobs and dropping its versions",
        tag="models",
        status=204,
        params=(MODEL_NAME, IF_MATCH),
        errors=(404, 412),
    ),
]
