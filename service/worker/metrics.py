"""Prometheus metrics of a worker process, served on `worker.metrics_port`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
# From an event to its receiver's 2xx: milliseconds when all is well, hours through retries.
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.jobs = Counter(
            "worker_jobs_total",
            "Jobs run, by function and outcome.",
            ["function", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "worker_job_duration_seconds",
            "Wall time of a job.",
            ["function"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.fit_limits = Counter(
            "worker_fit_limits_total",
            "Fits that hit a limit of their child process, by limit: memory, cpu, processes, "
            "or killed (SIGKILL, most likely the out-of-memory killer).",
            ["limit"],
            registry=self.registry,
        )
        self.artifact_rejections = Counter(
            "artifact_verification_failures_total",
            "Artifacts refused because their HMAC tag did not match.",
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "webhook_deliveries_total",
            "Webhook delivery attempts, by outcome: delivered (2xx), retry (another attempt is"
            " due), failed (refused, or out of retries).",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_lag = Histogram(
            "webhook_delivery_lag_seconds",
            "From an event to the 2xx of its receiver.",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
