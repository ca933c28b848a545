"""A job's trace: with tracing on, the worker continues the trace of the request that submitted
the job, so one trace covers submit -> queue -> fit -> version stored; a job submitted without
a trace is a trace of its own, and with tracing off neither api nor worker records a span."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from service.settings import Settings
from tests.factories import LOGREG, ClientFactory, burst_worker, job_of, make_model, submit
from tests.iris import iris_records
from tests.spans import (
    CALLER_SPAN,
    CALLER_TRACE,
    CALLER_TRACEPARENT,
    hex_ids,
    memory_spans,
    with_tracing,
)

pytestmark = pytest.mark.anyio

JOB_SPANS = ("job queued", "job run", "load inputs", "fit", "store version")


def named(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    found = {s.name: s for s in spans if s.name in JOB_SPANS}
    assert sorted(found) == sorted(JOB_SPANS), [s.name for s in spans]
    return found


async def test_one_trace_covers_submit_queue_fit_and_the_version_stored(
    client_factory: ClientFactory, settings: Settings
) -> None:
    traced = with_tracing(settings)
    with memory_spans(traced) as spans:
        client = await client_factory(traced)
        await make_model(client, "iris", LOGREG, target="species")
        job = await submit(
            client, "iris", "train", {"data": iris_records()}, traceparent=CALLER_TRACEPARENT
        )
        await burst_worker(traced)()
        assert (await job_of(client, job["id"]))["status"] == "succeeded"
        in_trace = spans.of_trace(CALLER_TRACE)
    [submitted] = [s for s in in_trace if s.kind == SpanKind.SERVER]
    assert hex_ids(submitted)[2] == CALLER_SPAN
    found = named(in_trace)
    run = found["job run"]
    submit_id, run_id = hex_ids(submitted)[1], hex_ids(run)[1]
    assert hex_ids(found["job queued"])[2] == submit_id
    assert hex_ids(run)[2] == submit_id
    for inner in ("load inputs", "fit", "store version"):
        assert hex_ids(found[inner])[2] == run_id
    assert run.kind == SpanKind.CONSUMER
    assert run.attributes is not None
    assert run.attributes["job.id"] == job["id"]
    assert run.attributes["job.kind"] == "train"
    assert run.attributes["job.attempt"] == 1
    assert run.attributes["job.outcome"] == "succeeded"
    stored = found["store version"]
    assert stored.attributes is not None and stored.attributes["model.version"] == 1
    # In order: queued until picked up, then fit, then the version stored, within the run.
    queued, fit = found["job queued"], found["fit"]
    assert queued.end_time is not None and run.start_time is not None
    assert fit.end_time is not None and stored.start_time is not None
    assert queued.end_time <= run.start_time
    assert fit.end_time <= stored.start_time
    assert stored.end_time is not None and run.end_time is not None
    assert stored.end_time <= run.end_time
    # The statements that stored the version are in the trace too.
    statements = [s for s in in_trace if s.kind == SpanKind.CLIENT]
    assert any(hex_ids(s)[2] == hex_ids(stored)[1] for s in statements)


async def test_a_job_submitted_without_a_trace_is_a_trace_of_its_own(
    client_factory: ClientFactory, settings: Settings
) -> None:
    traced = with_tracing(settings)
    with memory_spans(traced) as spans:
        client = await client_factory(traced)
        await make_model(client, "iris", LOGREG, target="species")
        await submit(client, "iris", "train", {"data": iris_records()})
        await burst_worker(traced)()
        finished = spans.finished()
    [submitted] = [s for s in finished if s.kind == SpanKind.SERVER and "train" in s.name]
    run = named([s for s in finished if hex_ids(s)[0] == hex_ids(submitted)[0]])["job run"]
    assert hex_ids(run)[2] == hex_ids(submitted)[1]


async def test_with_tracing_off_a_worker_and_api_record_nothing_even_when_asked(
    client_factory: ClientFactory, settings: Settings
) -> None:
    assert not settings.tracing.enabled
    # A provider is running in this process, so anything traced would be seen.
    with memory_spans(with_tracing(settings)) as spans:
        client = await client_factory(settings)
        await make_model(client, "iris", LOGREG, target="species")
        job = await submit(
            client, "iris", "train", {"data": iris_records()}, traceparent=CALLER_TRACEPARENT
        )
        await burst_worker(settings)()
        assert (await job_of(client, job["id"]))["status"] == "succeeded"
        assert spans.finished() == []
