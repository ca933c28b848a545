"""Prometheus metrics of the api process, labelled by route template (never the raw path)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ApiMetrics:
    """One registry per app instance, so several apps in one process (tests) stay apart."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests served.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to the last byte of the response.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight", "HTTP requests being served.", registry=self.registry
        )
        self.auth_rejections = Counter(
            "auth_rejections_total",
            "Requests refused by authentication or authorization.",
            ["reason"],
            registry=self.registry,
        )
        self.artifact_rejections = Counter(
            "artifact_verification_failures_total",
            "Artifacts refused because their HMAC tag did not match.",
            registry=self.registry,
        )
        self.dependency_errors = Counter(
            "dependency_unavailable_total",
            "Requests answered 503 because a dependency was down.",
            ["dependency"],
            registry=self.registry,
        )
        self.limit_refusals = Counter(
            "limit_refusals_total",
            "Requests refused by a fair-use limit (rate, active_jobs, predict_rows).",
            ["limit"],
            registry=self.registry,
        )
        self.sse_open_streams = Gauge(
            "sse_open_streams",
            "Server-Sent Event streams open on this process.",
            ["route"],
            registry=self.registry,
        )
        self.sse_events_sent = Counter(
            "sse_events_sent_total",
            "Messages sent on Server-Sent Event streams (heartbeats not counted).",
            ["route"],
            registry=self.registry,
        )
        self.rate_limiter_failures = Counter(
            "rate_limiter_failures_total",
            "Requests let through unchecked because Redis did not answer the rate limiter.",
            ["reason"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "api_ready",
            "1 when this process's last readiness check (GET /readyz) passed, else 0.",
            registry=self.registry,
        )
        self.readiness_changes = Counter(
            "api_readiness_changes_total",
            "Times the answer of GET /readyz changed between ready and not ready.",
            registry=self.registry,
        )
        self._last_ready: bool | None = None

    def readiness(self, ready: bool) -> None:
        """Records a readiness check; a change from the last one counts (not the first)."""
        self.ready.set(1 if ready else 0)
        if self._last_ready is not None and ready != self._last_ready:
            self.readiness_changes.inc()
        self._last_ready = ready
