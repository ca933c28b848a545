"""Requests and tracing: with `[tracing]` on, a request is a server span continuing its caller's
`traceparent` (an invalid one starts a new trace, never an error), its SQL statements are spans
inside it, and its log lines name the trace; the gate in front records a caller's sampled
requests, none of its unsampled ones, and `sample_ratio` of the rest; with tracing off no
middleware is installed and a `traceparent` changes nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import httpx2
import msgspec
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.trace import SpanKind

from service.http.app import create_app
from service.http.tracing import TracingGate, sampled_by_caller
from service.logs import JsonFormatter
from service.settings import Settings
from tests.factories import LOGREG, ClientFactory, make_model, submit
from tests.iris import iris_records
from tests.spans import (
    CALLER_SPAN,
    CALLER_TRACE,
    CALLER_TRACEPARENT,
    hex_ids,
    memory_spans,
    otlp_receiver,
    with_tracing,
)

pytestmark = pytest.mark.anyio


class Lines(logging.Handler):
    """JSON lines formatted as they are logged, while the request's span is current."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(msgspec.json.decode(self.format(record)))


@contextmanager
def access_lines() -> Iterator[Lines]:
    logger = logging.getLogger("service.access")
    lines, level = Lines(), logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)


async def test_a_callers_traceparent_is_continued_by_the_server_span_and_its_sql(
    client_factory: ClientFactory, settings: Settings
) -> None:
    traced = with_tracing(settings)
    with memory_spans(traced) as spans:
        client = await client_factory(traced)
        response = await client.get("/models", headers={"traceparent": CALLER_TRACEPARENT})
        assert response.status_code == 200
        in_trace = spans.of_trace(CALLER_TRACE)
    [server] = [s for s in in_trace if s.kind == SpanKind.SERVER]
    _, server_id, parent = hex_ids(server)
    assert parent == CALLER_SPAN
    assert server.attributes is not None and server.attributes.get("http.status_code") == 200
    statements = [s for s in in_trace if s.kind == SpanKind.CLIENT]
    assert statements, "the request's SQL statements are spans of its trace"
    assert all(hex_ids(s)[2] == server_id for s in statements)


async def test_an_invalid_traceparent_starts_a_new_trace(
    client_factory: ClientFactory, settings: Settings
) -> None:
    traced = with_tracing(settings)
    with memory_spans(traced) as spans:
        client = await client_factory(traced)
        for bad in ("00-nonsense", f"ff-{CALLER_TRACE}-{CALLER_SPAN}-01", "00-" + "0" * 32 + "-x"):
            response = await client.get("/models", headers={"traceparent": bad})
            assert response.status_code == 200
        servers = [s for s in spans.finished() if s.kind == SpanKind.SERVER]
    assert len(servers) == 3
    assert all(hex_ids(s)[2] is None for s in servers)
    assert len({hex_ids(s)[0] for s in servers}) == 3


async def test_log_lines_of_a_traced_request_name_its_trace_and_span(
    client_factory: ClientFactory, settings: Settings
) -> None:
    traced = with_tracing(settings)
    traced = msgspec.structs.replace(
        traced, http=msgspec.structs.replace(traced.http, access_log=True)
    )
    with memory_spans(traced) as spans, access_lines() as lines:
        client = await client_factory(traced)
        await client.get("/models", headers={"traceparent": CALLER_TRACEPARENT})
        [server] = [s for s in spans.of_trace(CALLER_TRACE) if s.kind == SpanKind.SERVER]
    [line] = lines.lines
    assert (line["trace_id"], line["span_id"]) == hex_ids(server)[:2]


async def test_with_tracing_off_nothing_is_installed_and_a_traceparent_changes_nothing(
    client_factory: ClientFactory, settings: Settings, raw: asyncpg.Connection
) -> None:
    assert not settings.tracing.enabled
    app = create_app(settings)
    installed: list[object] = [m.cls for m in app.user_middleware]
    assert installed and TracingGate not in installed
    client = await client_factory(settings)
    assert not hasattr(asyncpg.connection.Connection.execute, "__wrapped__")
    await make_model(client, "iris", LOGREG, target="species")
    with access_lines() as lines:
        job = await submit(
            client, "iris", "train", {"data": iris_records()}, traceparent=CALLER_TRACEPARENT
        )
    assert all("trace_id" not in line for line in lines.lines)
    stored = await raw.fetchval("SELECT trace_context FROM jobs WHERE id = $1", job["id"])
    assert stored is None


async def test_with_tracing_on_a_job_row_keeps_its_submitters_trace_context(
    client_factory: ClientFactory, settings: Settings, raw: asyncpg.Connection
) -> None:
    traced = with_tracing(settings)
    with memory_spans(traced) as spans:
        client = await client_factory(traced)
        await make_model(client, "iris", LOGREG, target="species")
        job = await submit(
            client, "iris", "train", {"data": iris_records()}, traceparent=CALLER_TRACEPARENT
        )
        [server] = [s for s in spans.of_trace(CALLER_TRACE) if s.kind == SpanKind.SERVER]
    stored = await raw.fetchval("SELECT trace_context::text FROM jobs WHERE id = $1", job["id"])
    trace_id, span_id, _ = hex_ids(server)
    assert msgspec.json.decode(stored) == {"traceparent": f"00-{trace_id}-{span_id}-01"}


@pytest.mark.parametrize(
    ("traceparent", "sampled"),
    [
        (CALLER_TRACEPARENT, True),
        (f"00-{CALLER_TRACE}-{CALLER_SPAN}-00", False),
        (f"01-{CALLER_TRACE}-{CALLER_SPAN}-01-later-fields", True),
        (f"00-{CALLER_TRACE}-{CALLER_SPAN}-01-extra", None),
        (f"ff-{CALLER_TRACE}-{CALLER_SPAN}-01", None),
        (f"00-{'0' * 32}-{CALLER_SPAN}-01", None),
        (f"00-{CALLER_TRACE}-{'0' * 16}-01", None),
        (f"00-{CALLER_TRACE.upper()}-{CALLER_SPAN}-01", None),
        ("nonsense", None),
        (None, None),
    ],
)
def test_the_gate_reads_a_callers_sampling_decision_as_w3c_defines_it(
    traceparent: str | None, sampled: bool | None
) -> None:
    headers = [(b"host", b"x")]
    if traceparent is not None:
        headers.append((b"traceparent", traceparent.encode()))
    assert sampled_by_caller(headers) is sampled
    if traceparent is not None:  # twice is never valid
        assert sampled_by_caller([*headers, (b"traceparent", traceparent.encode())]) is None


async def test_at_ratio_zero_only_a_callers_sampled_requests_are_recorded(
    client_factory: ClientFactory, settings: Settings, raw: asyncpg.Connection
) -> None:
    traced = with_tracing(settings, sample_ratio=0.0)
    unsampled = f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"
    with memory_spans(traced) as spans:
        client = await client_factory(traced)
        await make_model(client, "iris", LOGREG, target="species")
        assert (await client.get("/models")).status_code == 200
        job = await submit(client, "iris", "train", {"data": iris_records()}, traceparent=unsampled)
        assert spans.finished() == []
        response = await client.get("/models", headers={"traceparent": CALLER_TRACEPARENT})
        assert response.status_code == 200
        [server] = [s for s in spans.finished() if s.kind == SpanKind.SERVER]
    assert hex_ids(server)[2] == CALLER_SPAN
    # The caller's unsampled context still travels with the job, so its run is not recorded.
    stored = await raw.fetchval("SELECT trace_context::text FROM jobs WHERE id = $1", job["id"])
    assert msgspec.json.decode(stored) == {"traceparent": unsampled}


async def test_probes_and_scrapes_are_never_traced(
    client_factory: ClientFactory, settings: Settings
) -> None:
    traced = with_tracing(settings)
    with memory_spans(traced) as spans:
        client = await client_factory(traced)
        for path in ("/livez", "/readyz", "/metrics"):
            await client.get(path, headers={"traceparent": CALLER_TRACEPARENT})
        await client.get("/models/metrics", headers={"traceparent": CALLER_TRACEPARENT})
        [server] = [s for s in spans.finished() if s.kind == SpanKind.SERVER]
    assert server.attributes is not None and server.attributes["http.target"] == "/models/metrics"
    # Named by its route template, never by the model's name.
    assert server.name == "GET /models/{name}"
    assert server.attributes["http.route"] == "/models/{name}"


async def test_a_configured_app_exports_its_spans_over_otlp_to_the_endpoint(
    settings: Settings,
) -> None:
    with otlp_receiver() as receiver:
        traced = with_tracing(settings, otlp_endpoint=receiver.url, service_name="api-under-test")
        async with LifespanManager(create_app(traced)) as manager:
            transport = httpx2.ASGITransport(app=manager.app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.get("/models", headers={"traceparent": CALLER_TRACEPARENT})
                assert response.status_code == 200
        # The lifespan's end flushed the batch to the receiver.
        assert receiver.received.wait(10)
    assert set(receiver.paths) == {"/v1/traces"}
    assert set(receiver.service_names) == {"api-under-test"}
    assert "GET" in " ".join(receiver.span_names)
