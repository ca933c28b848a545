"""Trace context beyond the request: carried into a job's row, continued by the worker, and
named in log lines. OpenTelemetry's API only (no SDK), so the domain may use it: with tracing
off there is never a span in the context, and each of these costs a context lookup.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

# W3C Trace Context alone: a caller's baggage is not worth storing with every job.
_W3C = TraceContextTextMapPropagator()


def current_carrier() -> dict[str, str] | None:
    """The span in progress as W3C headers (`traceparent`, `tracestate`); None outside one."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier or None


@contextmanager
def continued(carrier: Mapping[str, str] | None) -> Iterator[None]:
    """Within the block, new spans are children of the carried one (if any, and valid)."""
    if not carrier:
        yield
        return
    token = context.attach(_W3C.extract(carrier))
    try:
        yield
    finally:
        context.detach(token)


@contextmanager
def detached() -> Iterator[None]:
    """Within the block, no span is current: background work (a job's heartbeats) that would
    otherwise add a span to its job's trace every second."""
    token = context.attach(context.Context())
    try:
        yield
    finally:
        context.detach(token)


def current_ids() -> tuple[str, str] | None:
    """The trace and span ids (hex) of the current span when it is sampled (exported), for
    log lines. Sampled, not "recording": a request's span ends with its last body chunk, and
    the access log line written after that belongs to it all the same."""
    ids = trace.get_current_span().get_span_context()
    if not (ids.is_valid and ids.trace_flags.sampled):
        return None
    return format(ids.trace_id, "032x"), format(ids.span_id, "016x")
