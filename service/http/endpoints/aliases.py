"""A model's aliases: `/models/{name}/aliases[/{alias}]`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.domain.aliases import is_alias_name
from service.domain.errors import NotFound
from service.http.operation import Operation, Param
from service.http.params import MODEL_NAME, path_str
from service.http.preconditions import IF_MATCH, if_match
from service.http.responses import json_response
from service.http.routes import principal_of
from service.http.state import services
from service.schemas.registry import AliasList, AliasOut, AliasPut

ALIAS = Param(
    name="alias",
    where="path",
    schema={"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,62}$", "example": "production"},
    description="Alias name",
)


def _alias(request: Request) -> str:
    """An alias named in the path; one no alias can have (a NUL byte, 300 characters) is a 404
    here, before it reaches a query. A PUT's new name is checked by the use case (422)."""
    value: str = request.path_params["alias"]
    if request.method != "PUT" and not is_alias_name(value):
        shown = value[:100].encode("unicode_escape").decode()
        raise NotFound(f"model '{path_str(request, 'name')}' has no alias '{shown}'")
    return value


def _tagged(alias: AliasOut) -> Response:
    return json_response(alias, 200, {"ETag": alias.etag})


async def list_aliases(request: Request) -> Response:
    items = await services(request).aliases.list(path_str(request, "name"))
    return json_response(AliasList(items=items))


async def get_alias(request: Request) -> Response:
    return _tagged(await services(request).aliases.get(path_str(request, "name"), _alias(request)))


async def put_alias(request: Request, body: AliasPut) -> Response:
    svc = services(request)
    name = path_str(request, "name")
    alias = await svc.aliases.put(name, _alias(request), body.version, if_match(request))
    # This process's next predict must see the move without waiting for its own NOTIFY.
    svc.registry.forget(principal_of(request).tenant, name)
    return _tagged(alias)


async def delete_alias(request: Request) -> Response:
    svc = services(request)
    name = path_str(request, "name")
    await svc.aliases.delete(name, _alias(request), if_match(request))
    svc.registry.forget(principal_of(request).tenant, name)
    return Response(status_code=204)


OPERATIONS = [
    Operation(
        operation_id="list_aliases",
        method="GET",
        path="/models/{name}/aliases",
        endpoint=list_aliases,
        scope="models:read",
        summary="List a model's aliases",
        tag="aliases",
        response=AliasList,
        params=(MODEL_NAME,),
        errors=(404,),
    ),
    Operation(
        operation_id="get_alias",
        method="GET",
        path="/models/{name}/aliases/{alias}",
        endpoint=get_alias,
        scope="models:read",
        summary="Get one alias",
        tag="aliases",
        response=AliasOut,
        params=(MODEL_NAME, ALIAS),
        errors=(404,),
    ),
    Operation(
        operation_id="put_alias",
        method="PUT",
        path="/models/{name}/aliases/{alias}",
        endpoint=put_alias,
        scope="models:write",
        summary="Point an alias at a version (creating or moving it)",
        tag="aliases",
        body=AliasPut,
        example=AliasPut(version=1),
        response=AliasOut,
        params=(MODEL_NAME, ALIAS, IF_MATCH),
        errors=(404, 412),
        description='Predictions with `"alias": "<alias>"` are answered by the version it '
        "names, on every api replica from the next prediction on. The move is audited.",
    ),
    Operation(
        operation_id="delete_alias",
        method="DELETE",
        path="/models/{name}/aliases/{alias}",
        endpoint=delete_alias,
        scope="models:write",
        summary="Delete an alias",
        tag="aliases",
        status=204,
        params=(MODEL_NAME, ALIAS, IF_MATCH),
        errors=(404, 412),
    ),
]
