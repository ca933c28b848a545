"""Per-model Prometheus metrics of the api, with a bounded number of label values.

Model names are per tenant, so every series is labelled with both `tenant` and `model`. Each
process gives labels of their own to the first `metrics.per_model_limit` (tenant, model) pairs
it serves; every later pair shares `OTHER` in both labels. A pair is only admitted once the
model was found (`admit`, called when its routing is read), so requests naming models that do
not exist cannot use up the slots. `OTHER` cannot be a tenant or a model name (those start with
a letter or a digit), so it never mixes with a real one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram

from service.domain.errors import DomainError

OTHER = "_other"
DEFAULT_LIMIT = 50
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LOAD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Failures of the predict path that are not domain errors but are expected, by class name.
KNOWN_FAILURES = frozenset({"Overloaded", "PredictionTimeout", "TamperedArtifact"})

Labels = tuple[str, str]


R = TypeVar("R")


class ModelMetrics:
    def __init__(self, registry: CollectorRegistry, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._admitted: set[Labels] = set()
        self._by_model_id: dict[int, Labels] = {}
        self._model_ids: dict[Labels, int] = {}  # so a re-created model's old id is dropped
        self._series: dict[Labels, _Children] = {}
        labels = ["tenant", "model"]
        self.latency = Histogram(
            "model_predict_duration_seconds",
            "Time to answer an online prediction, by model (routing, loading, queueing, running).",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.rows = Counter(
            "model_predict_rows_total", "Rows predicted, by model.", labels, registry=registry
        )
        self.errors = Counter(
            "model_predict_errors_total",
            "Predictions that were not answered, by model and reason (the error's class).",
            [*labels, "reason"],
            registry=registry,
        )
        self.cache = Counter(
            "model_cache_requests_total",
            "Look-ups of a loaded version in the api's model cache, by result: hit or miss.",
            [*labels, "result"],
            registry=registry,
        )
        self.evictions = Counter(
            "model_cache_evictions_total",
            "Loaded versions dropped from the model cache to make room (not invalidations).",
            labels,
            registry=registry,
        )
        self.load_time = Histogram(
            "model_load_duration_seconds",
            "Time to read, verify and unpickle a version's artifact.",
            labels,
            buckets=LOAD_BUCKETS,
            registry=registry,
        )

    # -- which labels ---------------------------------------------------------------------------

    def admit(self, tenant: str, name: str, model_id: int) -> None:
        """Model `name` of `tenant` exists (its id is `model_id`): it gets labels of its own
        while there is room."""
        pair = (tenant, name)
        if pair not in self._admitted:
            if len(self._admitted) >= self.limit:
                return
            self._admitted.add(pair)
        old = self._model_ids.get(pair)
        if old != model_id:
            if old is not None:
                del self._by_model_id[old]
            self._model_ids[pair] = model_id
            self._by_model_id[model_id] = pair

    def labels(self, tenant: str, name: str) -> Labels:
        pair = (tenant, name)
        return pair if pair in self._admitted else (OTHER, OTHER)

    def labels_of(self, model_id: int) -> Labels:
        return self._by_model_id.get(model_id, (OTHER, OTHER))

    # -- what happened --------------------------------------------------------------------------

    async def observe_predict(
        self, tenant: str, name: str, rows: int, prediction: Awaitable[R]
    ) -> R:
        """Awaits `prediction` of `rows` rows, counting its time and rows, or its failure."""
        start = time.perf_counter()
        try:
            response = await prediction
        except Exception as exc:
            self.errors.labels(*self.labels(tenant, name), _reason(exc)).inc()
            raise
        children = self._children(self.labels(tenant, name))
        children.latency.observe(time.perf_counter() - start)
        children.rows.inc(rows)
        return response

    def cache_lookup(self, model_id: int, hit: bool) -> None:
        children = self._children(self.labels_of(model_id))
        (children.hits if hit else children.misses).inc()

    def evicted(self, model_id: int) -> None:
        self.evictions.labels(*self.labels_of(model_id)).inc()

    def loaded(self, model_id: int, seconds: float) -> None:
        self.load_time.labels(*self.labels_of(model_id)).observe(seconds)

    def _children(self, labels: Labels) -> _Children:
        # prometheus_client's `labels()` takes a lock and builds a key on every call; the hot
        # path looks its series up once per pair (at most `limit` + 1 of them).
        found = self._series.get(labels)
        if found is None:
            found = _Children(
                self.latency.labels(*labels),
                self.rows.labels(*labels),
                self.cache.labels(*labels, "hit"),
                self.cache.labels(*labels, "miss"),
            )
            self._series[labels] = found
        return found


@dataclass(frozen=True)
class _Children:
    latency: Histogram
    rows: Counter
    hits: Counter
    misses: Counter


def _reason(exc: Exception) -> str:
    """A bounded label: the class of a domain or known serving error, else `internal`."""
    name = type(exc).__name__
    return name if isinstance(exc, DomainError) or name in KNOWN_FAILURES else "internal"
