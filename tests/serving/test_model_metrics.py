"""Per-model metrics keep a bounded label set: the first `limit` (tenant, model) pairs found get
labels of their own, later ones and names that were never found share `_other`; the same name
in two tenants is two pairs; a re-created model keeps its pair. Predictions count time, rows and
failures by reason; the model cache reports evictions by the evicted model."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from service.domain.errors import NotFound
from service.serving.cache import ByteBudgetCache
from service.serving.model_metrics import OTHER, ModelMetrics

pytestmark = pytest.mark.anyio


@dataclass
class Answer:
    predictions: list[object]


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def series(registry: CollectorRegistry, name: str) -> set[tuple[str, str]]:
    return {
        (s.labels["tenant"], s.labels["model"])
        for family in registry.collect()
        for s in family.samples
        if s.name == name
    }


async def answer(rows: int) -> Answer:
    return Answer([0] * rows)


async def not_found() -> Answer:
    raise NotFound("model 'ghost' does not exist")


async def broken() -> Answer:
    raise RuntimeError("a bug")


async def test_models_past_the_limit_share_the_overflow_labels() -> None:
    registry = CollectorRegistry()
    metrics = ModelMetrics(registry, limit=2)
    for model_id, (tenant, name) in enumerate(
        [("acme", "a"), ("acme", "b"), ("acme", "c"), ("zeta", "a"), ("acme", "a")]
    ):
        metrics.admit(tenant, name, model_id)
        await metrics.observe_predict(tenant, name, 3, answer(3))
    assert series(registry, "model_predict_rows_total") == {
        ("acme", "a"),
        ("acme", "b"),
        (OTHER, OTHER),
    }
    assert value(registry, "model_predict_rows_total", tenant="acme", model="a") == 6
    assert value(registry, "model_predict_rows_total", tenant=OTHER, model=OTHER) == 6
    assert value(registry, "model_predict_duration_seconds_count", tenant=OTHER, model=OTHER) == 2


async def test_names_never_found_take_no_slot_and_failures_count_by_reason() -> None:
    registry = CollectorRegistry()
    metrics = ModelMetrics(registry, limit=1)
    for _ in range(3):
        with pytest.raises(NotFound):
            await metrics.observe_predict("acme", "ghost", 1, not_found())
    metrics.admit("acme", "real", 7)
    with pytest.raises(RuntimeError):
        await metrics.observe_predict("acme", "real", 1, broken())
    labels = {"tenant": OTHER, "model": OTHER, "reason": "NotFound"}
    assert value(registry, "model_predict_errors_total", **labels) == 3
    labels = {"tenant": "acme", "model": "real", "reason": "internal"}
    assert value(registry, "model_predict_errors_total", **labels) == 1
    assert series(registry, "model_predict_rows_total") == set()  # failures predict no rows


async def test_a_recreated_model_keeps_its_labels_and_its_old_id_is_forgotten() -> None:
    metrics = ModelMetrics(CollectorRegistry(), limit=1)
    metrics.admit("acme", "a", 1)
    metrics.admit("acme", "a", 2)  # deleted and created again: a new id
    assert metrics.labels_of(2) == ("acme", "a")
    assert metrics.labels_of(1) == (OTHER, OTHER)
    metrics.admit("acme", "b", 3)
    assert metrics.labels("acme", "b") == (OTHER, OTHER)


async def test_cache_evictions_are_reported_by_the_evicted_model() -> None:
    registry = CollectorRegistry()
    metrics = ModelMetrics(registry, limit=10)
    metrics.admit("acme", "a", 1)
    metrics.admit("acme", "b", 2)
    cache: ByteBudgetCache[str] = ByteBudgetCache(
        100, lambda key: metrics.evicted(key[0] if isinstance(key, tuple) else -1)
    )

    async def load(value: str) -> tuple[str, int]:
        await asyncio.sleep(0)
        return value, 60

    await cache.get_or_load((1, 1), lambda: load("a1"))
    await cache.get_or_load((2, 1), lambda: load("b1"))  # 120 bytes > 100: a1 goes
    cache.discard(lambda key: True)  # invalidation, not an eviction
    assert value(registry, "model_cache_evictions_total", tenant="acme", model="a") == 1
    assert value(registry, "model_cache_evictions_total", tenant="acme", model="b") is None
