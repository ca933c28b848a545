"""Online predictions: decode rows, run the estimator off the event loop, encode the answer.

Estimator calls run on a small thread pool (scikit-learn releases the GIL in its numeric
kernels). A thread counts as busy until its call really returns, also after the caller was
answered 504 for taking longer than `http.predict_timeout` (Python cannot stop a thread), so a
slow model's abandoned calls keep their threads and newcomers wait instead of piling up behind
them. While every thread is busy at most `models.predict_queue` requests wait; beyond that
they are refused with 503 rather than queued without bound.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.domain.limits import too_many_rows
from service.domain.traffic import DEFAULT_FIGURES_REVISION
from service.estimators.predicting import Prediction, check_output
from service.serving import calls
from service.serving.batching import Batcher
from service.serving.inputs import Rows
from service.serving.registry import LoadedModel, ModelRegistry
from service.serving.routing import route
from service.serving.shadows import Shadows
from service.serving.traffic_figures import TrafficFigures
from service.settings import Settings


class Overloaded(Exception):
    """Every prediction thread is busy and `models.predict_queue` requests already wait."""


class PredictionTimeout(Exception):
    """A prediction took longer than `http.predict_timeout`."""


@dataclass(frozen=True, slots=True)
class Answer:
    model: LoadedModel  # the version that answered
    predictions: list[Prediction]  # one per output asked for, in order


class Predictor:
    def __init__(
        self, registry: ModelRegistry, figures: TrafficFigures, settings: Settings
    ) -> None:
        self.registry = registry
        self.figures = figures
        self.timeout = settings.http.predict_timeout
        self.max_waiting = settings.models.predict_queue
        self.pool = concurrent.futures.ThreadPoolExecutor(
            settings.models.predict_threads, thread_name_prefix="predict"
        )
        self.batcher = Batcher(
            self.pool,
            concurrency=settings.models.predict_threads,
            max_rows=settings.models.batch_max_rows,
            max_wait=settings.models.batch_max_wait_ms / 1000,
        )
        self.max_rows_by_type = settings.models.batch_max_rows_by_type
        self.max_rows = settings.limits.max_predict_rows
        self.shadows = Shadows(registry, figures, settings)

    async def predict(
        self,
        tenant: str,
        name: str,
        rows: Rows,
        outputs: Sequence[str] = (),
        version: int | None = None,
        alias: str | None = None,
        request_id: str = "",
    ) -> Answer:
        """`outputs` empty: the model's default output. `version` or `alias` pins a version;
        with neither, the model's traffic split chooses by `request_id`."""
        # Per-model latency, rows and errors (service/serving/model_metrics.py).
        answer = self._predict(tenant, name, rows, outputs, version, alias, request_id)
        return await self.registry.metrics.observe_predict(tenant, name, rows.size, answer)

    async def _predict(
        self,
        tenant: str,
        name: str,
        rows: Rows,
        outputs: Sequence[str],
        version: int | None,
        alias: str | None,
        request_id: str,
    ) -> Answer:
        size = rows.size
        if size > self.max_rows:  # before any work: no model load, no thread
            raise too_many_rows(rows.field, size, self.max_rows)
        current = await self.registry.route(tenant, name)
        routed = route(current, name, version, alias, request_id)
        if not routed.follows_split:
            model = await self.registry.load(name, current, routed.version)
            return Answer(model, await self._run_all(model, rows, outputs))
        # Counted in the traffic figures of whichever version the split chose.
        key = (tenant, current.model_id, current.traffic_revision or DEFAULT_FIGURES_REVISION)
        started = time.perf_counter()
        try:
            model = await self.registry.load(name, current, routed.version)
            predictions = await self._run_all(model, rows, outputs)
        except Exception:
            if routed.version is not None:
                elapsed = time.perf_counter() - started
                self.figures.record(key, routed.version, elapsed, size, False)
            raise
        self.figures.record(key, model.version, time.perf_counter() - started, size, True)
        if current.shadow and size:
            first = predictions[0]
            self.shadows.submit(key, name, current, rows, first.output, first)
        return Answer(model, predictions)

    async def _run_all(
        self, model: LoadedModel, rows: Rows, outputs: Sequence[str]
    ) -> list[Prediction]:
        asked = list(outputs) or [model.default_output]
        for output in asked:  # every output checked before any is computed
            check_output(model.estimator, output)
        if not rows.size:
            return [Prediction(output, np.empty((0,))) for output in asked]
        return [await self._run(model, rows, output) for output in asked]

    async def _run(self, model: LoadedModel, rows: Rows, output: str) -> Prediction:
        if self.batcher.saturated and self.batcher.waiting >= self.max_waiting:
            raise Overloaded()
        try:
            prepare = functools.partial(calls.prepare, model)
            apply = functools.partial(calls.apply, model.estimator, output)
            key = (model.model_id, model.version, output)
            max_rows = self.max_rows_by_type.get(model.model_type)
            async with asyncio.timeout(self.timeout):  # no task of its own, unlike wait_for
                result: Prediction = await self.batcher.submit(
                    key, rows, rows.size, prepare, apply, max_rows
                )
                return result
        except TimeoutError:
            raise PredictionTimeout() from None

    async def close(self) -> None:
        await self.shadows.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
