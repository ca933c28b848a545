"""Shadow predictions: versions that see the same rows as the answering version, after the
answer, for comparison only.

An answer hands its rows to a bounded queue and returns; it never waits for a shadow. Consumers
(one per `models.shadow_threads`) take what has queued, waiting `models.shadow_batch_wait_ms`
for company, and run it on threads of their own, never the answering threads: the requests
for one shadow version and output go through the estimator as one stacked call, and each
request's predictions are compared with its answer on that thread too. So a shadow's cost per
request is mostly a queue entry, and its outcome is only counted: an error, a timeout or a slow
shadow cannot change or delay an answer.

At most `models.shadow_queue` shadow requests are unfinished (queued or in a call) at a time;
beyond that a shadow is skipped and counted as dropped, so a shadow slower than the traffic
costs bounded memory. A call that takes longer than `http.predict_timeout` counts its requests
as errors; its consumer takes no more work until the thread really returns (Python cannot stop
a thread), and meanwhile newcomers are dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.estimators.predicting import Prediction, check_output
from service.repositories.models import Current
from service.serving import calls
from service.serving.inputs import Rows
from service.serving.registry import LoadedModel, ModelRegistry
from service.serving.traffic_figures import FiguresKey, TrafficFigures
from service.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Work:
    key: FiguresKey
    name: str
    current: Current
    version: int
    rows: Rows
    output: str
    answer: Prediction


@dataclass(frozen=True, slots=True)
class _Outcome:
    ok: bool
    compared: int = 0
    agreeing: int = 0


class Shadows:
    def __init__(
        self, registry: ModelRegistry, figures: TrafficFigures, settings: Settings
    ) -> None:
        self.registry = registry
        self.figures = figures
        self.timeout = settings.http.predict_timeout
        self.max_pending = settings.models.shadow_queue
        self.max_rows = settings.models.batch_max_rows
        self.batch_wait = settings.models.shadow_batch_wait_ms / 1000
        self.threads = settings.models.shadow_threads
        self.pool = concurrent.futures.ThreadPoolExecutor(self.threads, thread_name_prefix="shadow")
        self.pending = 0  # queued or in a call, not yet counted
        self.calls = 0  # estimator calls made, for tests and metrics
        self._queue: asyncio.Queue[_Work] = asyncio.Queue()
        self._consumers: list[asyncio.Task[None]] = []

    def submit(
        self,
        key: FiguresKey,
        name: str,
        current: Current,
        rows: Rows,
        output: str,
        answer: Prediction,
    ) -> None:
        """Queues every shadow of `current` on the request's rows; returns at once."""
        if not self._consumers:
            self._consumers = [
                asyncio.get_running_loop().create_task(self._consume(), name=f"shadow-{i}")
                for i in range(self.threads)
            ]
        for version in current.shadow:
            if self.pending >= self.max_pending:
                self.figures.record_dropped(key, version)
                continue
            self.pending += 1
            self._queue.put_nowait(_Work(key, name, current, version, rows, output, answer))

    async def _consume(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self.batch_wait:
                await asyncio.sleep(self.batch_wait)
            rows = batch[0].rows.size
            while not self._queue.empty() and rows < self.max_rows:
                batch.append(self._queue.get_nowait())
                rows += batch[-1].rows.size
            lanes: dict[tuple[Any, ...], list[_Work]] = {}
            for work in batch:
                lane = (work.key, work.current.model_id, work.version, work.output)
                lanes.setdefault(lane, []).append(work)
            for works in lanes.values():
                try:
                    await self._run(works)
                except Exception:  # a consumer must outlive any one batch
                    log.exception("shadow batch failed")

    async def _run(self, works: list[_Work]) -> None:
        first = works[0]
        started = time.perf_counter()
        outcomes: Sequence[_Outcome] = [_Outcome(False)] * len(works)
        call: asyncio.Future[list[_Outcome]] | None = None
        try:
            model = await self.registry.load(first.name, first.current, first.version)
            check_output(model.estimator, first.output)
            self.calls += 1
            loop = asyncio.get_running_loop()
            call = loop.run_in_executor(self.pool, _predict_and_compare, model, works)
            async with asyncio.timeout(self.timeout):
                outcomes = await asyncio.shield(call)
        except Exception as exc:  # a shadow's failure is a figure, never the caller's
            log.debug(
                "shadow prediction failed",
                extra={"model": first.name, "version": first.version},
                exc_info=exc,
            )
        elapsed = time.perf_counter() - started
        for work, outcome in zip(works, outcomes, strict=True):
            self.pending -= 1
            self.figures.record_shadow(
                work.key,
                work.version,
                elapsed,
                work.rows.size,
                outcome.ok,
                outcome.compared,
                outcome.agreeing,
            )
        if call is not None and not call.done():
            with contextlib.suppress(Exception):  # counted above; wait for the thread to free
                await call

    async def close(self) -> None:
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        self.pool.shutdown(wait=False, cancel_futures=True)


def _predict_and_compare(model: LoadedModel, works: list[_Work]) -> list[_Outcome]:
    """On a shadow thread: each request's rows (a bad request fails alone), one stacked call,
    and each request's predictions compared with its answer."""
    matrices: list[Any] = []
    for work in works:
        try:
            matrices.append(calls.prepare(model, work.rows))
        except Exception:
            matrices.append(None)
    good = [m for m in matrices if m is not None]
    if not good:
        return [_Outcome(False)] * len(works)
    stacked = good[0] if len(good) == 1 else np.concatenate(good)
    values = calls.apply(model.estimator, works[0].output, stacked).to_json()
    outcomes: list[_Outcome] = []
    at = 0
    for work, matrix in zip(works, matrices, strict=True):
        if matrix is None:
            outcomes.append(_Outcome(False))
            continue
        mine = values[at : at + len(matrix)]
        at += len(matrix)
        compared, agreeing = agreement(work.answer.to_json(), mine)
        outcomes.append(_Outcome(True, compared, agreeing))
    return outcomes


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
