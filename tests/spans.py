"""Tracing in tests: the process's tracer provider with spans kept in memory (the real SDK and
its `InMemorySpanExporter`), and a tiny OTLP/HTTP receiver that decodes what it is sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.settings import Settings
from service.tracing.provider import Tracing, acquire

# A caller's span: W3C `traceparent` version 00, sampled.
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER_TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


def with_tracing(settings: Settings, **tracing: Any) -> Settings:
    """`settings` with `[tracing]` on (and any other key of it given)."""
    section = msgspec.structs.replace(settings.tracing, enabled=True, **tracing)
    return msgspec.structs.replace(settings, tracing=section)


@dataclass
class MemorySpans:
    tracing: Tracing
    exporter: InMemorySpanExporter

    def finished(self) -> list[ReadableSpan]:
        """Every span ended so far (the batch processor is flushed first)."""
        self.tracing.provider.force_flush()
        return list(self.exporter.get_finished_spans())

    def of_trace(self, trace_id: str) -> list[ReadableSpan]:
        return [
            s
            for s in self.finished()
            if s.context is not None and format(s.context.trace_id, "032x") == trace_id
        ]


@contextmanager
def memory_spans(settings: Settings) -> Iterator[MemorySpans]:
    """Starts the process's tracing with an in-memory exporter; an app or worker started with
    tracing on meanwhile shares it (one provider per process)."""
    exporter = InMemorySpanExporter()
    tracing = acquire(settings.tracing, exporter)
    assert tracing is not None, "memory_spans needs settings with tracing on"
    try:
        yield MemorySpans(tracing, exporter)
    finally:
        tracing.release()


def hex_ids(span: ReadableSpan) -> tuple[str, str, str | None]:
    """(trace id, span id, parent span id) of `span`, as W3C headers write them."""
    assert span.context is not None
    parent = None if span.parent is None else format(span.parent.span_id, "016x")
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x"), parent


@dataclass
class OtlpReceiver:
    """An OTLP/HTTP trace receiver on a free local port: keeps each export it is sent."""

    url: str = ""
    paths: list[str] = field(default_factory=list)
    span_names: list[str] = field(default_factory=list)
    service_names: list[str] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            export = ExportTraceServiceRequest()
            export.ParseFromString(body)
            for resource_spans in export.resource_spans:
                for attribute in resource_spans.resource.attributes:
                    if attribute.key == "service.name":
                        receiver.service_names.append(attribute.value.string_value)
                for scope_spans in resource_spans.scope_spans:
                    receiver.span_names += [span.name for span in scope_spans.spans]
            receiver.paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()
            receiver.received.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
