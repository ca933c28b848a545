"""Shadow predictions: versions that see the same rows as the answering version, after the
answer, for comparison only.

A shadow runs on threads of its own (`models.shadow_threads`, micro-batched like answers), never
on the answering threads, and its outcome is only counted: an error, a timeout or a slow shadow
cannot change or delay an answer. At most `models.shadow_queue` shadow predictions are
unfinished at a time; beyond that a shadow is skipped and counted as dropped, so a shadow slower
than the traffic costs bounded memory. A shadow that takes longer than `http.predict_timeout`
counts as an error (its thread stays busy until the call returns, as for answers).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import math
import time
from typing import Any

from service.estimators.predicting import check_output
from service.repositories.models import Current
from service.schemas.predictions import PredictRequest
from service.serving.batching import Batcher
from service.serving.calls import apply_json, prepare_rows
from service.serving.registry import ModelRegistry
from service.serving.traffic_figures import FiguresKey, TrafficFigures
from service.settings import Settings

log = logging.getLogger(__name__)


class Shadows:
    def __init__(
        self, registry: ModelRegistry, figures: TrafficFigures, settings: Settings
    ) -> None:
        self.registry = registry
        self.figures = figures
        self.timeout = settings.http.predict_timeout
        self.max_pending = settings.models.shadow_queue
        self.pool = concurrent.futures.ThreadPoolExecutor(
            settings.models.shadow_threads, thread_name_prefix="shadow"
        )
        self.batcher = Batcher(
            self.pool,
            concurrency=settings.models.shadow_threads,
            max_rows=settings.models.batch_max_rows,
            max_wait=0.0,
        )
        self.pending = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(
        self,
        key: FiguresKey,
        name: str,
        current: Current,
        body: PredictRequest,
        size: int,
        output: str,
        answer: list[Any],
    ) -> None:
        """Starts every shadow of `current` on the request's rows; returns at once."""
        loop = asyncio.get_running_loop()
        for version in current.shadow:
            if self.pending >= self.max_pending:
                self.figures.record_dropped(key, version)
                continue
            self.pending += 1
            task = loop.create_task(
                self._shadow(key, name, current, version, body, size, output, answer)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _shadow(
        self,
        key: FiguresKey,
        name: str,
        current: Current,
        version: int,
        body: PredictRequest,
        size: int,
        output: str,
        answer: list[Any],
    ) -> None:
        started = time.perf_counter()
        ok, compared, agreeing = False, 0, 0
        try:
            model = await self.registry.load(name, current, version)
            check_output(model.estimator, output)
            call = self.batcher.submit(
                (model.model_id, model.version, output),
                body,
                size,
                functools.partial(prepare_rows, model),
                functools.partial(apply_json, model.estimator, output),
            )
            values = await asyncio.wait_for(call, self.timeout)
            compared, agreeing = agreement(answer, values)
            ok = True
        except Exception as exc:  # a shadow's failure is a figure, never the caller's
            log.debug(
                "shadow prediction failed", extra={"model": name, "version": version}, exc_info=exc
            )
        finally:
            self.pending -= 1
            elapsed = time.perf_counter() - started
            self.figures.record_shadow(key, version, elapsed, size, ok, compared, agreeing)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.pool.shutdown(wait=False, cancel_futures=True)


def agreement(answer: list[Any], shadow: list[Any]) -> tuple[int, int]:
    """(rows compared, rows whose predictions are the same)."""
    compared = min(len(answer), len(shadow))
    return compared, sum(1 for a, b in zip(answer, shadow, strict=False) if same(a, b))


def same(a: Any, b: Any) -> bool:
    """Equal values; floats within 1e-9 relative (two fits of one version may differ in the
    last bits); objects (`predict_proba`) and lists (`transform`) field by field."""
    if a == b:
        return True
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return False
