"""The process's tracer provider: none with tracing off, one shared by its users and torn down
(asyncpg uninstrumented) by the last; traces start for requests and jobs, never for a lone SQL
statement; spans reach an OTLP receiver."""

from __future__ import annotations

import asyncpg
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanKind

from service.settings import Settings, TracingSettings
from service.tracing.provider import RootSampler, acquire, tracer_of
from tests.spans import memory_spans, otlp_receiver, with_tracing


def asyncpg_instrumented() -> bool:
    return hasattr(asyncpg.connection.Connection.execute, "__wrapped__")


def test_tracing_off_starts_nothing() -> None:
    assert acquire(TracingSettings(enabled=False)) is None
    assert not asyncpg_instrumented()
    assert not tracer_of(None, "x").start_span("y").is_recording()


def test_users_share_one_provider_and_the_last_release_ends_it() -> None:
    traced = with_tracing(Settings())
    with memory_spans(traced) as spans:
        second = acquire(traced.tracing)
        assert second is spans.tracing
        assert asyncpg_instrumented()
        second.release()
        assert asyncpg_instrumented()  # the first user still holds it
    assert not asyncpg_instrumented()
    later = acquire(traced.tracing)
    assert later is not None and later is not spans.tracing
    later.release()


def test_a_trace_starts_for_a_request_or_a_job_never_for_a_lone_statement() -> None:
    always, never = RootSampler(1.0), RootSampler(0.0)
    trace_id = 0x4BF92F3577B34DA6A3CE929D0E0E4736

    def kept(sampler: RootSampler, name: str, kind: SpanKind) -> bool:
        decision = sampler.should_sample(None, trace_id, name, kind).decision
        return decision == Decision.RECORD_AND_SAMPLE

    assert kept(always, "job run", SpanKind.CONSUMER)
    assert not kept(never, "job run", SpanKind.CONSUMER)
    assert not kept(always, "UPDATE", SpanKind.CLIENT)
    # The api's gate applied the ratio to requests already.
    assert kept(never, "GET", SpanKind.SERVER)


def test_the_sample_ratio_keeps_that_share_of_new_traces() -> None:
    with memory_spans(with_tracing(Settings(), sample_ratio=0.1)) as spans:
        tracer = spans.tracing.tracer("test")
        for _ in range(2000):
            tracer.start_span("job run", kind=SpanKind.CONSUMER).end()
        kept = len(spans.finished())
    assert 100 < kept < 300  # 10 % of 2000, give or take far more than chance would


def test_spans_are_exported_to_the_configured_otlp_endpoint() -> None:
    with otlp_receiver() as receiver:
        traced = with_tracing(Settings(), otlp_endpoint=receiver.url, service_name="svc-under-test")
        tracing = acquire(traced.tracing)
        assert tracing is not None
        tracing.tracer("test").start_span("exported", kind=SpanKind.SERVER).end()
        tracing.release()  # flushes the batch
        assert receiver.received.wait(10)
    assert receiver.paths == ["/v1/traces"]
    assert receiver.span_names == ["exported"]
    assert receiver.service_names == ["svc-under-test"]
