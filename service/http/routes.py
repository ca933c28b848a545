"""Routing from the declared operations: one Starlette route per path, a dispatcher per route.

The dispatcher authorizes from the operation's scopes, takes a token from the caller's rate
limit (`rate_limits.py`), then decodes the declared body and authorizes the scopes its fields
need, then calls the endpoint with it; the endpoint never reads the body or checks a scope
itself, so a refused request stores nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.authentication import AuthCredentials, SimpleUser
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.auth.errors import AuthError
from service.auth.principal import Principal, authorize
from service.domain.actors import Actor, act_as
from service.http.bodies import read_body
from service.http.operation import Endpoint, Operation
from service.http.state import services
from service.logs import principal as principal_var
from service.logs import request_id as request_id_var


def principal_of(request: Request) -> Principal:
    """The authenticated caller; only valid inside an operation that declares a scope."""
    value = request.scope.get("principal")
    assert isinstance(value, Principal), "operation has no scope"
    return value


def build_routes(operations: Sequence[Operation]) -> list[BaseRoute]:
    """One Starlette route per path, so a wrong method gets a 405 with the full `Allow` list."""
    by_path: dict[str, dict[str, Operation]] = {}
    ids: set[str] = set()
    for op in operations:
        methods = by_path.setdefault(op.path, {})
        if op.method in methods:
            raise ValueError(f"{op.method} {op.path} is declared twice")
        if op.operation_id in ids:
            raise ValueError(f"operation_id {op.operation_id!r} is declared twice")
        methods[op.method] = op
        ids.add(op.operation_id)
    return [
        Route(path, _dispatcher(methods), methods=list(methods), name=path)
        for path, methods in by_path.items()
    ]


def _dispatcher(methods: dict[str, Operation]) -> Endpoint:
    async def dispatch(request: Request) -> Response:
        op = methods["GET" if request.method == "HEAD" else request.method]
        who = None if op.scope is None else await _authenticate(request, op.scopes)
        # Everything this request reads or writes, response body included, is the caller's
        # tenant's; an operation without a scope sees no tenant's rows at all.
        act_as(None if who is None else Actor(who.tenant, who.sub, request_id_var.get() or ""))
        svc = services(request)
        # Before the body is read: a caller over its rate costs no upload.
        if who is not None and svc.rate_limits is not None:
            await svc.rate_limits.check(request.scope, who)
        if op.body is None:
            return await op.endpoint(request)
        if op.reader is not None:
            body = await op.reader(request, svc.settings.http)
        else:
            body = await read_body(request, op.body, svc.settings.http, op.accepts_csv)
        if who is not None and (more := op.body_scopes_of(body)):
            _authorize(request, who, (*op.scopes, *more))
        return await op.endpoint(request, body)

    return dispatch


async def _authenticate(request: Request, scopes: Sequence[str]) -> Principal:
    svc = services(request)
    try:
        who = await svc.auth.authenticate(request)
    except AuthError as exc:
        svc.metrics.auth_rejections.labels(exc.reason).inc()
        raise
    principal_var.set(who.sub)
    _authorize(request, who, scopes)
    request.scope["principal"] = who
    request.scope["user"] = SimpleUser(who.sub)
    request.scope["auth"] = AuthCredentials(["authenticated", *sorted(who.scopes)])
    return who


def _authorize(request: Request, who: Principal, scopes: Sequence[str]) -> None:
    try:
        authorize(who, *scopes)
    except AuthError as exc:
        services(request).metrics.auth_rejections.labels(exc.reason).inc()
        raise
