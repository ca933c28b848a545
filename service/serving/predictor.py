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
from typing import Any

from service.domain.errors import FieldError, InvalidInput
from service.domain.limits import too_many_rows
from service.domain.traffic import DEFAULT_FIGURES_REVISION
from service.estimators.predicting import check_output
from service.schemas.predictions import PredictRequest, PredictResponse
from service.serving.batching import Batcher
from service.serving.calls import apply_json, prepare_rows
from service.serving.registry import LoadedModel, ModelRegistry
from service.serving.routing import route
from service.serving.shadows import Shadows
from service.serving.traffic_figures import TrafficFigures
from service.settings import Settings


class Overloaded(Exception):
    """Every prediction thread is busy and `models.predict_queue` requests already wait."""


class PredictionTimeout(Exception):
    """A prediction took longer than `http.predict_timeout`."""


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
        self, tenant: str, name: str, body: PredictRequest, request_id: str = ""
    ) -> PredictResponse:
        size = _size_of(body)
        if size > self.max_rows:  # before any work: no model load, no thread
            field = "$.data" if body.data is not None else "$.rows"
            raise too_many_rows(field, size, self.max_rows)
        if body.version is not None and body.alias is not None:
            raise InvalidInput(
                "name a version or an alias, not both",
                [FieldError("$.alias", "given together with `version`")],
            )
        current = await self.registry.route(tenant, name)
        routed = route(current, name, body.version, body.alias, request_id)
        if not routed.follows_split:
            model = await self.registry.load(name, current, routed.version)
            output = body.output or model.default_output
            values = await self._run(model, body, size, output) if size else []
            return PredictResponse(model=name, version=model.version, predictions=values)
        # Counted in the traffic figures of whichever version the split chose.
        key = (tenant, current.model_id, current.traffic_revision or DEFAULT_FIGURES_REVISION)
        started = time.perf_counter()
        try:
            model = await self.registry.load(name, current, routed.version)
            output = body.output or model.default_output
            values = await self._run(model, body, size, output) if size else []
        except Exception:
            if routed.version is not None:
                elapsed = time.perf_counter() - started
                self.figures.record(key, routed.version, elapsed, size, False)
            raise
        self.figures.record(key, model.version, time.perf_counter() - started, size, True)
        if current.shadow and size:
            self.shadows.submit(key, name, current, body, size, output, values)
        return PredictResponse(model=name, version=model.version, predictions=values)

    async def _run(
        self, model: LoadedModel, body: PredictRequest, size: int, output: str
    ) -> list[Any]:
        check_output(model.estimator, output)
        if self.batcher.saturated and self.batcher.waiting >= self.max_waiting:
            raise Overloaded()
        try:
            prepare = functools.partial(prepare_rows, model)
            apply = functools.partial(apply_json, model.estimator, output)
            key = (model.model_id, model.version, output)
            max_rows = self.max_rows_by_type.get(model.model_type)
            async with asyncio.timeout(self.timeout):  # no task of its own, unlike wait_for
                return await self.batcher.submit(key, body, size, prepare, apply, max_rows)
        except TimeoutError:
            raise PredictionTimeout() from None

    async def close(self) -> None:
        await self.shadows.close()
        self.pool.shutdown(wait=False, cancel_futures=True)


def _size_of(body: PredictRequest) -> int:
    """Rows in the request, after checking it uses exactly one of the two forms."""
    if body.data is not None:
        if body.columns is not None or body.rows is not None:
            raise _one_form()
        return len(body.data)
    if body.columns is None or body.rows is None:
        raise _one_form()
    return len(body.rows)


def _one_form() -> InvalidInput:
    return InvalidInput(
        "send rows as `data` (records) or as `columns` + `rows`",
        [FieldError("$", "expected `data`, or `columns` with `rows`")],
    )
