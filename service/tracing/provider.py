"""The process's tracer provider, built from `[tracing]`, and the asyncpg instrumentation.

One provider serves everything in a process that traces (the api's middleware, the worker's job
spans, the SQL statements) and is torn down when its last user releases it. It is never made
OpenTelemetry's global provider, which can be set only once per process: a process that starts
and stops tracing (a test run) could not turn it off again. With tracing off nothing here runs,
so no statement and no request pays for it.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, NoOpTracer, SpanKind, Tracer
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from service.settings import TracingSettings


class Tracing:
    """The provider and how many users (an api, a worker) hold it."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.users = 0

    def tracer(self, name: str) -> Tracer:
        return self.provider.get_tracer(name)

    def release(self) -> None:
        """The last user's release exports what is left (blocking: call it off the loop)."""
        global _active
        self.users -= 1
        if self.users > 0:
            return
        _active = None
        AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
        self.provider.shutdown()


_active: Tracing | None = None


def acquire(settings: TracingSettings, exporter: SpanExporter | None = None) -> Tracing | None:
    """The process's tracing, started by its first user (None with tracing off); `exporter`
    replaces the OTLP one (tests read spans from memory). A later user shares the first one's
    provider whatever its own settings say: one process, one provider."""
    global _active
    if not settings.enabled:
        return None
    if _active is None:
        provider = TracerProvider(
            sampler=ParentBased(root=RootSampler(settings.sample_ratio)),
            resource=Resource.create({SERVICE_NAME: settings.service_name}),
        )
        if exporter is None:
            exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint or None)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
        _active = Tracing(provider)
    _active.users += 1
    return _active


def tracer_of(tracing: Tracing | None, name: str) -> Tracer:
    """A tracer of `tracing`, or one that records nothing when tracing is off."""
    return NoOpTracer() if tracing is None else tracing.tracer(name)


class RootSampler(Sampler):
    """Decides for spans that start a trace: every request's (the api's gate let through only
    the share `sample_ratio` of them, before any of OpenTelemetry's work: see
    service/http/tracing.py), a share of the others (a job submitted outside any trace), and
    never a lone SQL statement (a heartbeat, a sweep, a listener's), which would be a trace of
    one span. Spans with a parent follow it (`ParentBased`)."""

    def __init__(self, ratio: float) -> None:
        self.ratio = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind == SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        if kind == SpanKind.SERVER:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return self.ratio.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"RootSampler{{{self.ratio.get_description()}}}"
