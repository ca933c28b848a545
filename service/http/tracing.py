"""Tracing of requests when `[tracing]` is on: a gate outside every other middleware, and
OpenTelemetry's ASGI middleware behind it for the requests the gate lets through.

OpenTelemetry's middleware costs a request some hundreds of microseconds before it even asks
the sampler (it parses the URL and every header into attributes), so it is not run for requests
that would not be recorded. The gate decides first, from the `traceparent` header alone: a
valid sampled one is traced (its server span continues the caller's), a valid unsampled one is
served in that context without recording (a job it submits carries it, unsampled), and
without a valid one (absent, or invalid: never an error) `sample_ratio` of requests are traced,
each starting a new trace. Probes and scrapes are never traced.

With tracing off the app is returned untouched: no gate, no middleware, no instrumentation, and
not even OpenTelemetry's SDK imported.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.edge import METHODS
from service.settings import TracingSettings
from service.tracing.context import continued

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span

UNTRACED = frozenset({"/livez", "/readyz", "/metrics"})
_SPAN = "service.tracing.span"  # the request's server span, in its ASGI scope
# W3C Trace Context, version 00 (a later version's first four fields read alike), as
# OpenTelemetry's propagator reads it, so that the gate and the middleware always agree.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


def sampled_by_caller(headers: list[tuple[bytes, bytes]]) -> bool | None:
    """The sampled flag of a valid `traceparent`; None without one (absent or invalid)."""
    values = [value for name, value in headers if name == b"traceparent"]
    if len(values) != 1:  # two are invalid: W3C says restart the trace
        return None
    found = _TRACEPARENT.fullmatch(values[0].decode("latin-1").strip())
    if found is None:
        return None
    version, trace_id, span_id, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return bool(int(flags, 16) & 1)


class TracingGate:
    """Runs a request through OpenTelemetry's middleware only when it is to be recorded."""

    def __init__(self, app: ASGIApp, provider: TracerProvider, ratio: float) -> None:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.metrics import NoOpMeterProvider

        self.app = app
        self.ratio = ratio
        self.traced = OpenTelemetryMiddleware(
            app,
            tracer_provider=provider,
            # Metrics are Prometheus's (service/http/metrics.py); not twice.
            meter_provider=NoOpMeterProvider(),
            # One span per request, not one more per body chunk sent or received.
            exclude_spans=["receive", "send"],
            # Named by method until the route is known: never by the raw path, which names
            # models and would make a span name per model.
            default_span_details=lambda scope: (_method(scope), {}),
            server_request_hook=_keep_span,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED:
            await self.app(scope, receive, send)
            return
        sampled = sampled_by_caller(scope["headers"])
        if sampled or (sampled is None and random.random() < self.ratio):

            async def send_named(message: Message) -> None:
                if message["type"] == "http.response.start":
                    _name_by_route(scope)
                await send(message)

            await self.traced(scope, receive, send_named)
        elif sampled is False:
            with continued(_trace_headers(scope)):
                await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _method(scope: Scope) -> str:
    method = str(scope.get("method", ""))
    return method if method in METHODS else "HTTP"


def _keep_span(span: Span, scope: dict[str, Any]) -> None:
    scope[_SPAN] = span


def _name_by_route(scope: Scope) -> None:
    """The span named and labelled by the route template the router matched, if any."""
    span, template = scope.get(_SPAN), getattr(scope.get("route"), "path", None)
    if span is not None and isinstance(template, str):
        span.update_name(f"{_method(scope)} {template}")
        span.set_attribute("http.route", template)


def _trace_headers(scope: Scope) -> dict[str, str]:
    wanted = {b"traceparent": "traceparent", b"tracestate": "tracestate"}
    return {wanted[k]: v.decode("latin-1") for k, v in scope["headers"] if k in wanted}


def traced(
    app: Starlette, settings: TracingSettings, exporter: SpanExporter | None = None
) -> Starlette:
    """`app` with the gate outside every other middleware (so the request id, access log and
    error answers all see the request's span), holding the process's tracer provider until the
    app's lifespan ends."""
    if not settings.enabled:
        return app
    from service.tracing.provider import acquire

    tracing = acquire(settings, exporter)
    assert tracing is not None
    app.add_middleware(TracingGate, provider=tracing.provider, ratio=settings.sample_ratio)
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
