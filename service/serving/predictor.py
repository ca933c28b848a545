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
from typing import Any

import numpy as np

from service.domain.errors import FieldError, InvalidInput
from service.domain.limits import too_many_rows
from service.estimators.predicting import apply_output, check_output, prepare_input
from service.estimators.table import Table
from service.schemas.predictions import PredictRequest, PredictResponse
from service.serving.batching import Batcher
from service.serving.registry import LoadedModel, ModelRegistry
from service.settings import Settings


class Overloaded(Exception):
    """Every prediction thread is busy and `models.predict_queue` requests already wait."""


class PredictionTimeout(Exception):
    """A prediction took longer than `http.predict_timeout`."""


class Predictor:
    def __init__(self, registry: ModelRegistry, settings: Settings) -> None:
        self.registry = registry
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

    async def predict(self, tenant: str, name: str, body: PredictRequest) -> PredictResponse:
        size = _size_of(body)
        if size > self.max_rows:  # before any work: no model load, no thread
            field = "$.data" if body.data is not None else "$.rows"
            raise too_many_rows(field, size, self.max_rows)
        model = await self.registry.resolve(tenant, name, body.version)
        output = body.output or model.default_output
        values = await self._run(model, body, size, output) if size else []
        return PredictResponse(model=name, version=model.version, predictions=values)

    async def _run(
        self, model: LoadedModel, body: PredictRequest, size: int, output: str
    ) -> list[Any]:
        check_output(model.estimator, output)
        if self.batcher.saturated and self.batcher.waiting >= self.max_waiting:
            raise Overloaded()
        try:
            prepare = functools.partial(_prepare, model)
            apply = functools.partial(_apply_json, model.estimator, output)
            key = (model.model_id, model.version, output)
            max_rows = self.max_rows_by_type.get(model.model_type)
            call = self.batcher.submit(key, body, size, prepare, apply, max_rows)
            return await asyncio.wait_for(call, self.timeout)
        except TimeoutError:
            raise PredictionTimeout() from None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _apply_json(estimator: Any, output: str, matrix: Any) -> list[Any]:
    # Overflow to inf is an answer (encoded as null), not an error; errstate is per thread.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return apply_output(estimator, matrix, output).to_json()


def _size_of(body: PredictRequest) -> int:
    """Rows in the request, after checking it uses exactly one of the two forms."""
    if body.data is not None:
        if body.columns is not None or body.rows is not None:
            raise _one_form()
        return len(body.data)
    if body.columns is None or body.rows is None:
        raise _one_form()
    return len(body.rows)


def _prepare(model: LoadedModel, body: PredictRequest) -> Any:
    """In a pool thread: the request's feature matrix (the checks of `prepare_input`)."""
    if body.data is not None:
        table = Table.from_records(body.data)
    else:
        assert body.columns is not None and body.rows is not None
        table = Table(body.columns, body.rows, "$.rows", "rows")
        table.check_shape()
    return prepare_input(model.estimator, model.features, model.feature_kinds, table)


def _one_form() -> InvalidInput:
    return InvalidInput(
        "send rows as `data` (records) or as `columns` + `rows`",
        [FieldError("$", "expected `data`, or `columns` with `rows`")],
    )
