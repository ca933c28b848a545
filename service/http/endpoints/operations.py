"""Operations endpoints: probes, metrics, the OpenAPI document and Swagger UI. No token needed."""

from __future__ import annotations

import asyncio

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from service.domain.errors import Unavailable
from service.http.operation import Operation
from service.http.responses import json_response
from service.http.state import Services, services
from service.repositories.migrator import pending_migrations

PROBE_TIMEOUT = 1.0


class Live(msgspec.Struct):
    status: str


class Health(msgspec.Struct):
    ready: bool
    checks: dict[str, str]


async def livez(request: Request) -> Response:
    return json_response(Live(status="ok"))


async def readyz(request: Request) -> Response:
    svc = services(request)
    checks = await readiness(svc)
    ready = all(v == "ok" for v in checks.values())
    svc.metrics.readiness(ready)  # the probe's answers, not those of the V2 health routes
    headers = None if ready else {"Retry-After": "5"}
    return json_response(Health(ready, checks), 200 if ready else 503, headers)


async def readiness(svc: Services) -> dict[str, str]:
    """Each dependency's state: `ok`, or why it is not."""
    results = await asyncio.gather(_check_postgres(svc), _check_redis(svc))
    return {"postgres": results[0], "redis": results[1]}


async def _check_postgres(svc: Services) -> str:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            missing = await pending_migrations(svc.db, svc.migrations)
    except (Unavailable, TimeoutError):
        return "unavailable"
    return "ok" if missing == 0 else f"{missing} migration(s) pending"


async def _check_redis(svc: Services) -> str:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await svc.redis.ping()
    except Exception:
        return "unavailable"
    return "ok"


async def metrics(request: Request) -> Response:
    registry = services(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return Response(request.app.state.openapi, media_type="application/json")


_DOCS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>models-service API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui", persistAuthorization: true});</script>
</body></html>"""


async def docs(request: Request) -> Response:
    return HTMLResponse(_DOCS)


OPERATIONS = [
    Operation(
        operation_id="check_liveness",
        method="GET",
        path="/livez",
        endpoint=livez,
        scope=None,
        summary="Liveness: the process serves",
        tag="operations",
        response=Live,
    ),
    Operation(
        operation_id="check_readiness",
        method="GET",
        path="/readyz",
        endpoint=readyz,
        scope=None,
        summary="Readiness: PostgreSQL and Redis answer and migrations are applied",
        tag="operations",
        response=Health,
        extra_responses={503: "Not ready; the body names the failing checks"},
    ),
    Operation(
        operation_id="get_metrics",
        method="GET",
        path="/metrics",
        endpoint=metrics,
        scope=None,
        summary="Prometheus metrics",
        tag="operations",
        response_media=("text/plain",),
    ),
    Operation(
        operation_id="get_openapi",
        method="GET",
        path="/openapi.json",
        endpoint=openapi,
        scope=None,
        summary="This document",
        tag="operations",
    ),
    Operation(
        operation_id="get_docs",
        method="GET",
        path="/docs",
        endpoint=docs,
        scope=None,
        summary="Swagger UI",
        tag="operations",
        response_media=("text/html",),
    ),
]
