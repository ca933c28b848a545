"""Prometheus metrics of a worker process, served on `worker.metrics_port`."""

from __future__ import annotations

from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from service.schemas.jobs import JobKind

JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
# From an event to its receiver's 2xx: milliseconds when all is well, hours through retries.
JOB_KINDS: tuple[str, ...] = get_args(JobKind)
FIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


class WorkerMetrics:
    """The worker's own counters, and the job backlog it reads for every replica to show
    (`job_stats.JobStats`): series without a `worker` label agree across replicas, so a
    dashboard takes their max."""

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
        self.job_outcomes = Counter(
            "worker_job_outcomes_total",
            "Job runs by kind and outcome: succeeded, failed, cancelled, retried (an attempt"
            " failed for an infrastructure reason and the job was queued again), interrupted"
            " (the worker stopped or the attempt was aborted).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.fit_duration = Histogram(
            "worker_fit_duration_seconds",
            "Wall time of a fit's child process, by model type, whatever its outcome.",
            ["model_type"],
            buckets=FIT_BUCKETS,
            registry=self.registry,
        )
        self.heartbeat = Gauge(
            "worker_heartbeat_timestamp_seconds",
            "When this worker's event loop last ticked (Unix time); stops moving when it hangs.",
            registry=self.registry,
        )
        self.jobs_queued = Gauge(
            "jobs_queued", "Jobs waiting for a worker, by kind.", ["kind"], registry=self.registry
        )
        self.jobs_running = Gauge(
            "jobs_running", "Jobs being run, by kind.", ["kind"], registry=self.registry
        )
        self.oldest_queued = Gauge(
            "jobs_oldest_queued_age_seconds",
            "Age of the oldest queued job, by kind (0 when none waits).",
            ["kind"],
            registry=self.registry,
        )
        self.jobs_stuck = Gauge(
            "jobs_stuck",
            "Running jobs that look stuck, by kind and reason: heartbeat_stale (no heartbeat for"
            " worker.stale_after_seconds; the sweeper should re-queue them) or over_timeout"
            " (running longer than its attempts may take: each worker.job_timeout plus the"
            " delays between attempts).",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "arq_queue_depth",
            "Entries of the Redis queue, by state: due (runnable now) or deferred (retries).",
            ["state"],
            registry=self.registry,
        )
        self.stats_up = Gauge(
            "worker_job_stats_up",
            "1 when the last read of the backlog from this source (postgres, redis) worked; the"
            " backlog gauges keep their last figures while it is 0.",
            ["source"],
            registry=self.registry,
        )
        for kind in JOB_KINDS:  # every backlog series exists from the start, at 0
            for gauge in (self.jobs_queued, self.jobs_running, self.oldest_queued):
                gauge.labels(kind)
            for reason in ("heartbeat_stale", "over_timeout"):
                self.jobs_stuck.labels(kind, reason)
