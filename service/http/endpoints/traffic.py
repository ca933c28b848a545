"""A model's traffic: `/models/{name}/traffic` (the split, its shadows and their figures)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.domain.preconditions import etag
from service.domain.traffic import TrafficState
from service.http.operation import Operation
from service.http.params import MODEL_NAME, path_str
from service.http.preconditions import IF_MATCH, if_match
from service.http.responses import json_response
from service.http.routes import principal_of
from service.http.state import services
from service.schemas.registry import SplitShare, TrafficOut, TrafficPut, VersionFigures


async def _answer(request: Request, state: TrafficState, fresh: bool = False) -> Response:
    """`fresh`: a split just stored, whose figures (kept per revision) cannot have begun, so
    Redis is not asked: a change that committed is never answered 503 for its figures."""
    tenant = principal_of(request).tenant
    stored = state.stored
    key = (tenant, state.model_id, state.figures_revision)
    figures = {} if fresh else await services(request).figures.read(key)
    if stored is None:
        split = [] if state.current_version is None else [(state.current_version, 100)]
        shadow: list[int] = []
    else:
        split, shadow = stored.split, stored.shadow
    body = TrafficOut(
        split=[SplitShare(version=v, weight=w) for v, w in split],
        shadow=shadow,
        default=stored is None,
        updated_at=None if stored is None else stored.updated_at,
        updated_by=None if stored is None else stored.updated_by,
        etag=None if stored is None else etag(stored.revision),
        figures=[
            VersionFigures(
                version=f.version,
                role=f.role,
                requests=f.requests,
                errors=f.errors,
                rows=f.rows,
                p50_ms=f.p50_ms,
                p99_ms=f.p99_ms,
                agreement=f.agreement,
                dropped=f.dropped,
            )
            for _, f in sorted(figures.items())
        ],
    )
    headers = {} if body.etag is None else {"ETag": body.etag}
    return json_response(body, 200, headers)


async def get_traffic(request: Request) -> Response:
    return await _answer(request, await services(request).traffic.get(path_str(request, "name")))


async def put_traffic(request: Request, body: TrafficPut) -> Response:
    svc = services(request)
    name = path_str(request, "name")
    state = await svc.traffic.put(name, body, if_match(request))
    # This process's next predict must follow the split without waiting for its own NOTIFY.
    svc.registry.forget(principal_of(request).tenant, name)
    return await _answer(request, state, fresh=True)


async def delete_traffic(request: Request) -> Response:
    svc = services(request)
    name = path_str(request, "name")
    await svc.traffic.delete(name, if_match(request))
    svc.registry.forget(principal_of(request).tenant, name)
    return Response(status_code=204)


OPERATIONS = [
    Operation(
        operation_id="get_traffic",
        method="GET",
        path="/models/{name}/traffic",
        endpoint=get_traffic,
        scope="models:read",
        summary="The traffic split, its shadows, and their live figures",
        tag="traffic",
        response=TrafficOut,
        params=(MODEL_NAME,),
        errors=(404,),
        description="`figures` count the predictions that named no version or alias, over "
        "every api replica, since the split last changed (with no split: per version, whenever "
        "it was current). Figures reach Redis within a second of the prediction.",
    ),
    Operation(
        operation_id="put_traffic",
        method="PUT",
        path="/models/{name}/traffic",
        endpoint=put_traffic,
        scope="models:write",
        summary="Split traffic between versions, with shadow versions",
        tag="traffic",
        body=TrafficPut,
        example=TrafficPut(split=[SplitShare(version=1, weight=100)]),
        response=TrafficOut,
        params=(MODEL_NAME, IF_MATCH),
        errors=(404, 412),
        description="A prediction naming no version or alias goes to one version of `split`, "
        "chosen from a hash of its request id (`X-Request-ID`), so a retry with the same id "
        "gets the same version. Each `shadow` version predicts the same rows after the answer, "
        "for the figures only. Weights are integers summing to 100; every version must exist.",
    ),
    Operation(
        operation_id="delete_traffic",
        method="DELETE",
        path="/models/{name}/traffic",
        endpoint=delete_traffic,
        scope="models:write",
        summary="Send all traffic back to the current version",
        tag="traffic",
        status=204,
        params=(MODEL_NAME, IF_MATCH),
        errors=(404, 412),
    ),
]
