"""A model's versions: list, read, and activate one (rollback or roll forward)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.http.operation import Operation, Param
from service.http.params import MODEL_NAME, PAGING, multi_params, paging, path_int, path_str
from service.http.preconditions import IF_MATCH, if_match
from service.http.responses import json_response, tagged_response
from service.http.routes import principal_of
from service.http.state import services
from service.schemas.models import ModelOut
from service.schemas.pages import VersionPage
from service.schemas.training import VersionOut

VERSION = Param(
    name="version",
    where="path",
    schema={"type": "integer", "minimum": 1},
    description="Version number",
)


async def list_versions(request: Request) -> Response:
    limit, offset = paging(multi_params(request))
    page = await services(request).versions.list(path_str(request, "name"), limit, offset)
    return json_response(page)


async def get_version(request: Request) -> Response:
    version = path_int(request, "version", "version")
    return json_response(await services(request).versions.get(path_str(request, "name"), version))


async def activate_version(request: Request) -> Response:
    svc = services(request)
    name = path_str(request, "name")
    await svc.versions.activate(name, path_int(request, "version", "version"), if_match(request))
    # This process's next predict must see the change without waiting for its own NOTIFY.
    svc.registry.forget(principal_of(request).tenant, name)
    return tagged_response(await svc.models.get(name))


OPERATIONS = [
    Operation(
        operation_id="list_versions",
        method="GET",
        path="/models/{name}/versions",
        endpoint=list_versions,
        scope="models:read",
        summary="List a model's versions, newest first",
        tag="versions",
        response=VersionPage,
        params=(MODEL_NAME, *PAGING),
        errors=(404,),
    ),
    Operation(
        operation_id="get_version",
        method="GET",
        path="/models/{name}/versions/{version}",
        endpoint=get_version,
        scope="models:read",
        summary="Get one version",
        tag="versions",
        response=VersionOut,
        params=(MODEL_NAME, VERSION),
        errors=(404,),
    ),
    Operation(
        operation_id="activate_version",
        method="POST",
        path="/models/{name}/versions/{version}/activate",
        endpoint=activate_version,
        scope="models:write",
        summary="Make a version current (rollback or roll forward)",
        tag="versions",
        response=ModelOut,
        params=(MODEL_NAME, VERSION, IF_MATCH),
        errors=(404, 412),
        description="`If-Match` takes the model's `ETag` (GET /models/{name}): of concurrent "
        "activations holding one tag, one succeeds and the others get 412.",
    ),
]
