"""A span's W3C context, carried as headers and continued elsewhere: nothing outside a span,
and an invalid carrier starts nothing rather than failing."""

from __future__ import annotations

from opentelemetry.trace import SpanKind

from service.settings import Settings
from service.tracing.context import continued, current_carrier, current_ids, detached
from tests.spans import (
    CALLER_SPAN,
    CALLER_TRACE,
    CALLER_TRACEPARENT,
    hex_ids,
    memory_spans,
    with_tracing,
)


def test_outside_a_span_there_is_nothing_to_carry() -> None:
    assert current_carrier() is None
    assert current_ids() is None


def test_a_carried_context_is_continued_by_the_spans_started_within() -> None:
    with memory_spans(with_tracing(Settings())) as spans:
        tracer = spans.tracing.tracer("test")
        carried = {"traceparent": CALLER_TRACEPARENT, "tracestate": "vendor=1"}
        with continued(carried), tracer.start_as_current_span("child", kind=SpanKind.CONSUMER):
            carrier = current_carrier()
            ids = current_ids()
            with detached():
                assert current_carrier() is None
        [child] = spans.finished()
    trace_id, span_id, parent = hex_ids(child)
    assert (trace_id, parent) == (CALLER_TRACE, CALLER_SPAN)
    assert carrier == {"traceparent": f"00-{trace_id}-{span_id}-01", "tracestate": "vendor=1"}
    assert ids == (trace_id, span_id)


def test_an_invalid_or_missing_carrier_starts_a_new_trace() -> None:
    with memory_spans(with_tracing(Settings())) as spans:
        tracer = spans.tracing.tracer("test")
        for carrier in ({"traceparent": "00-zz-nonsense-01"}, {}, None):
            with continued(carrier), tracer.start_as_current_span("root", kind=SpanKind.SERVER):
                pass
        roots = spans.finished()
    assert len(roots) == 3
    assert all(hex_ids(s)[2] is None and hex_ids(s)[0] != CALLER_TRACE for s in roots)
