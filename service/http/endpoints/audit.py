"""The tenant's audit trail: `GET /audit`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.domain.audit import Audit
from service.http.operation import Operation
from service.http.params import LIST_PARAMS, multi_params
from service.http.responses import json_response
from service.http.state import services
from service.query import parse_query
from service.schemas.audit import AuditPage


async def list_audit(request: Request) -> Response:
    query = parse_query(multi_params(request))
    return json_response(await Audit(services(request).db).list(query))


OPERATIONS = [
    Operation(
        operation_id="list_audit",
        method="GET",
        path="/audit",
        endpoint=list_audit,
        scope="admin",
        summary="List the tenant's audit trail, newest first",
        tag="audit",
        response=AuditPage,
        params=LIST_PARAMS,
        description="Every create, change, delete, activation and cancel of the caller's "
        "tenant, with the actor's `sub` and the request id. Filter and sort with the query "
        "language over `id`, `at`, `actor`, `action`, `resource` and `request_id`.",
    ),
]
