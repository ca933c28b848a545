"""OpenTelemetry's ASGI middleware around the whole app when `[tracing]` is on: a server span
per request, continuing the caller's W3C `traceparent`; an invalid one starts a new trace.
With tracing off the app is returned untouched: no middleware, no instrumentation, and not
even OpenTelemetry's SDK imported.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette

from service.settings import TracingSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

# Probes and scrapes: a span each, every few seconds, from every replica, that nobody reads.
# Matched against the full URL; anchored so a model named `metrics` is still traced.
UNTRACED = r"^[a-z]+://[^/]+/(livez|readyz|metrics)(\?.*)?$"


def traced(
    app: Starlette, settings: TracingSettings, exporter: SpanExporter | None = None
) -> Starlette:
    """`app` with the tracing middleware outside every other one (so the request id, access
    log and error answers all see its span), holding the process's tracer provider until the
    app's lifespan ends."""
    if not settings.enabled:
        return app
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.metrics import NoOpMeterProvider

    from service.tracing.provider import acquire

    tracing = acquire(settings, exporter)
    assert tracing is not None
    app.add_middleware(
        OpenTelemetryMiddleware,
        tracer_provider=tracing.provider,
        # Metrics are Prometheus's (service/http/metrics.py); not twice.
        meter_provider=NoOpMeterProvider(),
        # One span per request, not one more per body chunk sent or received.
        exclude_spans=["receive", "send"],
        excluded_urls=UNTRACED,
    )
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        try:
            async with inner(app) as state:
                yield state
        finally:
            await asyncio.to_thread(tracing.release)  # exports the spans still pending

    app.router.lifespan_context = lifespan
    return app
