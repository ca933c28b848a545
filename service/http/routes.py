"""The route table: every operation's method, path, scope and wire types, declared once.

Authorization happens here, before the endpoint runs, from the scope each operation declares;
the OpenAPI document is generated from the same table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.authentication import AuthCredentials, SimpleUser
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.auth.errors import AuthError
from service.auth.principal import Principal, authorize
from service.http.state import services
from service.logs import principal as principal_var

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Param:
    """A path or query parameter, for the OpenAPI document."""

    name: str
    where: Literal["path", "query", "header"]
    schema: dict[str, Any]
    description: str = ""
    required: bool = False
    repeated: bool = False


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    endpoint: Endpoint
    scope: str | None  # None: no token needed
    summary: str
    tag: str
    body: Any = None  # msgspec type of the JSON body
    response: Any = None  # msgspec type of the success body
    status: int = 200
    params: Sequence[Param] = ()
    body_media: Sequence[str] = ("application/json",)
    response_media: Sequence[str] = ("application/json",)
    errors: Sequence[int] = ()
    description: str = ""
    extra_responses: dict[int, str] = field(default_factory=dict)


def principal_of(request: Request) -> Principal:
    """The authenticated caller; only valid inside an operation that declares a scope."""
    value = request.scope.get("principal")
    assert isinstance(value, Principal), "operation has no scope"
    return value


def build_routes(operations: Sequence[Operation]) -> list[BaseRoute]:
    """One Starlette route per path, so a wrong method gets a 405 with the full `Allow` list."""
    by_path: dict[str, dict[str, Operation]] = {}
    for op in operations:
        methods = by_path.setdefault(op.path, {})
        if op.method in methods:
            raise ValueError(f"{op.method} {op.path} is declared twice")
        methods[op.method] = op
    return [
        Route(path, _dispatcher(methods), methods=list(methods), name=path)
        for path, methods in by_path.items()
    ]


def _dispatcher(methods: dict[str, Operation]) -> Endpoint:
    async def dispatch(request: Request) -> Response:
        op = methods["GET" if request.method == "HEAD" else request.method]
        if op.scope is not None:
            await _authenticate(request, op.scope)
        return await op.endpoint(request)

    return dispatch


async def _authenticate(request: Request, scope: str) -> None:
    svc = services(request)
    try:
        who = await svc.auth.authenticate(request)
        principal_var.set(who.sub)
        authorize(who, scope)
    except AuthError as exc:
        svc.metrics.auth_rejections.labels(exc.reason).inc()
        raise
    request.scope["principal"] = who
    request.scope["user"] = SimpleUser(who.sub)
    request.scope["auth"] = AuthCredentials(["authenticated", *sorted(who.scopes)])
