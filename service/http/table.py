"""Every operation the service offers, in one table (see `http/routes.py`)."""

from __future__ import annotations

from service.http.endpoints import ops
from service.http.routes import Operation

OPERATIONS: list[Operation] = [
    Operation("GET", "/livez", ops.livez, None, "Liveness: the process serves", "operations"),
    Operation(
        "GET",
        "/readyz",
        ops.readyz,
        None,
        "Readiness: PostgreSQL and Redis answer and migrations are applied",
        "operations",
        response=ops.Health,
        extra_responses={503: "Not ready; the body names the failing checks"},
    ),
    Operation(
        "GET",
        "/metrics",
        ops.metrics,
        None,
        "Prometheus metrics",
        "operations",
        response_media=("text/plain",),
    ),
    Operation("GET", "/openapi.json", ops.openapi, None, "This document", "operations"),
    Operation(
        "GET", "/docs", ops.docs, None, "Swagger UI", "operations", response_media=("text/html",)
    ),
]
